"""RNA-seq: GDC STAR / FPKM-UQ readers, tumour/normal pairing, fold changes, DE labels, driver panel."""
