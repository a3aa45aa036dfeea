"""Cohort manifests: GDC sample sheets, TCGA barcodes, CPTAC manifests, validation, patient-level splits."""
