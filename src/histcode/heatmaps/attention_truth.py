"""Attention vs the synthetic truth for a cohort: read each slide's attention (``histcode.io.attention``) and the
generator's truth maps (``histcode.io.truth``), score them with ``histcode.metrics.attention_truth``.

Used only for synthetic cohorts (the pipeline never reads the truth otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from histcode.io.attention import read_attention
from histcode.io.truth import read_region_mask, read_tumour_bed, region_codes
from histcode.metrics.attention_truth import CELL_KEYS, attention_truth_metrics


def evaluate_attention_truth(
    attention_dir: Path,
    gt_dir: Path,
    cohort: str,
    slide_ids: list[str],
    patch_sizes: dict[str, float],
    *,
    top_k: int = 20,
    threshold: str | float = "otsu",
    scale: str = "raw",
    smooth_tiles: float = 0.0,
    close_tiles: int = 0,
    fill_holes: bool = False,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-slide metrics (DataFrame) and their means for ``slide_ids`` (tumour slides of a synthetic cohort).

    Scores against the tumour bed (``top_k_precision``, ``iou``, ``tumour_tile_fraction``) and, beside it,
    against the tumour-cell code of the region mask (the same names with ``_cells``). Reads the generator's
    truth through ``histcode.io.truth``. The thresholded map is the heatmap's (``scale``, ``smooth_tiles``,
    ``close_tiles``, ``fill_holes``: ``histcode.metrics.heatmap_values``); top-k ranks the raw attention. A
    slide that fails gets its reason in the ``error`` column and is left out of the means.
    """
    codes = region_codes()
    if "tumour" not in codes:
        raise ValueError(f"synthetic region codes {sorted(codes)} have no 'tumour' region")
    rows = []
    for sid in slide_ids:
        try:
            coords, raw, weights, _ = read_attention(Path(attention_dir) / f"{sid}.h5")
            bed, ds = read_tumour_bed(gt_dir, cohort, sid)
            mask, _ = read_region_mask(gt_dir, cohort, sid)
            row: dict[str, float | str] = {"slide_id": sid}
            for suffix, region in (("", bed), ("_cells", mask == codes["tumour"])):
                m = attention_truth_metrics(
                    coords, raw, patch_sizes[sid], region, ds, top_k=top_k, threshold=threshold, weights=weights,
                    scale=scale, smooth_tiles=smooth_tiles, close_tiles=close_tiles, fill_holes=fill_holes,
                )
                row.update(m if not suffix else {f"{c}{suffix}": m[c] for c in CELL_KEYS})
            rows.append({**row, "error": ""})
        except (OSError, ValueError, KeyError) as exc:
            rows.append({"slide_id": sid, "error": f"{type(exc).__name__}: {exc}"})
    df = pd.DataFrame(rows)
    ok = df[df["error"] == ""] if "error" in df else df
    summary = {
        f"mean_{c}": float(ok[c].mean())
        for c in (*CELL_KEYS, *(f"{k}_cells" for k in CELL_KEYS))
        if c in ok and len(ok)
    }
    summary.update({"n_slides": float(len(ok)), "n_failed": float(len(df) - len(ok)), "top_k": float(top_k)})
    return df, summary
