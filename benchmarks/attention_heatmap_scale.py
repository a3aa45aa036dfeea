"""Which heatmap scale and smoothing make the thresholded attention map match the tumour bed?

Scores every candidate (``heatmaps.scale`` x ``heatmaps.smooth_tiles``) of every exported MIL method of a
synthetic project against the generator's tumour bed: mean Otsu IoU and top-k precision over the tumour slides.
Choose on a development cohort (a ``histcode synth`` seed nobody reports on), then report the chosen setting on
other cohorts; never choose on the cohort you report.

    python benchmarks/attention_heatmap_scale.py PROJECT_DIR [--cohort tcga_synth] [--out table.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.io.attention import read_attention
from histcode.io.coords import read_coords
from histcode.io.manifest import read_manifest
from histcode.io.truth import read_tumour_bed
from histcode.metrics.attention_truth import attention_truth_metrics

CANDIDATES = [(scale, sigma) for scale in ("weights", "raw", "percentile") for sigma in (0.0, 0.5, 1.0, 1.5, 2.0)]


def score_project(root: Path, cohort: str, top_k: int = 20) -> pd.DataFrame:
    """One row per (method, scale, smooth_tiles, slide)."""
    manifest = read_manifest(root / "data/manifests" / cohort / "slides.csv")
    tumour = sorted(manifest.loc[manifest["label"] == 1, "slide_id"])
    gt = root / "data/synthetic/ground_truth"
    rows = []
    for sid in tumour:
        patch = float(read_coords(root / "data/tiles" / cohort / "coords" / f"{sid}.h5")[1]["patch_size"])
        bed, ds = read_tumour_bed(gt, cohort, sid)
        for mdir in sorted(d for d in (root / "data/attention" / cohort).iterdir() if d.is_dir()):
            coords, raw, weights, _ = read_attention(mdir / f"{sid}.h5")
            for scale, sigma in CANDIDATES:
                m = attention_truth_metrics(
                    coords, raw, patch, bed, ds, top_k=top_k, weights=weights, scale=scale, smooth_tiles=sigma
                )
                rows.append({"method": mdir.name, "scale": scale, "smooth_tiles": sigma, "slide_id": sid, **m})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("--cohort", default="tcga_synth")
    ap.add_argument("--out", type=Path, default=None, help="per-slide CSV")
    a = ap.parse_args()
    df = score_project(a.project, a.cohort)
    if a.out:
        df.to_csv(a.out, index=False)
    table = df.groupby(["method", "scale", "smooth_tiles"])[["iou", "top_k_precision", "selected_fraction"]].mean()
    with pd.option_context("display.max_rows", 500, "display.width", 160):
        print(table.unstack("method")["iou"].round(3).to_string())
        print()
        print(table.unstack("method")["top_k_precision"].round(3).to_string())
        print(f"\n{df['slide_id'].nunique()} tumour slides; mean tumour-bed tile share "
              f"{df.groupby('slide_id')['tumour_tile_fraction'].first().mean():.3f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
