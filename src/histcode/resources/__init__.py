"""Small reference files shipped with the package (see PROVENANCE.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """Filesystem path of a packaged resource file."""
    return Path(str(resources.files(__package__) / name))


INTOGEN_COMPENDIUM = "Compendium_Cancer_Genes.tsv.gz"
HISTCODE_GENE_LIST = "histcode_sample_gene_dataset.csv"
