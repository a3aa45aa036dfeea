"""GDC sample sheets of both portal generations → one layout, with the ``Sample Type`` the pipeline reads.

Why: the GDC Data Portal 2 (2024 on) writes sample sheets without a ``Sample Type`` column. In its place come
``Tissue Type`` (Tumor / Normal), ``Tumor Descriptor`` (Primary, Metastatic, Recurrence, Not Applicable, ...),
``Specimen Type`` and ``Preservation Method``: a TCGA-LUAD sheet downloaded on 2025-05-22 has these 11 columns.
Sheets downloaded before, like the 2023 TCGA-LUSC slide sheet in ``tests/data``, hold ``Sample Type``. For TCGA the
sample type is the code of the Sample ID (``TCGA-XX-XXXX-01A``: 01 Primary Tumor, 11 Solid Tissue Normal), which
is what the old column held, so it is derived from there, and the new ``Tissue Type`` is checked against it: a
row where the two disagree is recorded and left out, never labelled by one of them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from histcode.cohort.barcodes import BarcodeError, parse_barcode

SAMPLE_TYPE, TISSUE_TYPE = "Sample Type", "Tissue Type"


def _tissue_of(code: str) -> str | None:
    """The Tissue Type a sample code implies: tumour codes 01-09, normal codes 10-14; None for the rest."""
    n = int(code)
    return "tumor" if 1 <= n <= 9 else "normal" if 10 <= n <= 14 else None


def is_portal2(sheet: pd.DataFrame) -> bool:
    """A GDC Data Portal 2 sheet: Tissue Type instead of Sample Type."""
    return SAMPLE_TYPE not in sheet.columns and TISSUE_TYPE in sheet.columns


def with_sample_type(sheet: pd.DataFrame, *, table: str) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """``sheet`` with a ``Sample Type`` column (portal 2 sheets: from each Sample ID's code) and the failure rows of
    the lines whose Tissue Type contradicts that code (those lines are dropped). Other sheets pass unchanged."""
    if not is_portal2(sheet):
        return sheet, []
    types, keep, failures = [], [], []
    for line, r in sheet.iterrows():
        sample, tissue = r.get("Sample ID"), r.get(TISSUE_TYPE)
        try:
            bc = parse_barcode(sample) if isinstance(sample, str) else None
        except BarcodeError:
            bc = None  # the sheet's Sample ID check names the line
        types.append(bc.sample_type if bc else pd.NA)
        implied = _tissue_of(bc.sample_code) if bc else None
        ok = implied is None or not isinstance(tissue, str) or tissue.strip().lower() == implied
        keep.append(ok)
        if not ok:
            assert bc is not None
            why = (f"Sample ID {sample} (code {bc.sample_code}: {bc.sample_type!r}) but the sheet's Tissue Type says "
                   f"{tissue!r}; correct the sheet row")
            failures.append({"table": table, "row": line, "file": r.get("File Name"), "kind": "sample_type_mismatch",
                             "reason": why})
    out = sheet.copy()
    out.insert(list(out.columns).index(TISSUE_TYPE), SAMPLE_TYPE, pd.array(types, dtype="string"))
    return out[pd.Series(keep, index=out.index, dtype=bool)], failures
