"""HistCode: WSI self-supervised learning for tumour diagnosis and driver-gene differential expression."""

__version__ = "0.1.0"
