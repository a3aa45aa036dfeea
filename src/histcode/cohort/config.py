"""The ``ingest`` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IngestConfig:
    """require_files: missing/non-slide files are recorded in failures.csv and excluded; false builds a
    metadata-only manifest (files not checked, e.g. to plan a GDC download).
    check_format: run OpenSlide ``detect_format`` on slides and sniff RNA file headers (cheap).
    progress: show tqdm progress bars over files.
    """

    require_files: bool = True
    check_format: bool = True
    progress: bool = True
