"""Synthetic cohorts only: DE results against the generator's ground truth (``histcode.synth.truth``).

1. Planted vs null genes: held-out Pearson of genes with a planted morphology effect (lymphocyte,
   cellularity, tumour) vs genes without (null), a one-sided Wilcoxon rank-sum (planted > null), and
   null vs random baseline (two-sided: null genes should be indistinguishable from random).
2. Per-gene heatmaps vs lymphocyte regions: for each per-gene attention file, the top-k precision of its
   highest-attention tiles for ``lymphocyte_dense`` tiles (chance = the slide's lymphocyte tile share),
   the AUC of attention for lymphocyte vs other tiles, the lymphocyte enrichment of the top k and the
   Spearman correlation of attention with each tile's lymphocyte fraction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from histcode.evaluation.de_stats import wilcoxon

log = logging.getLogger(__name__)

LYMPHOCYTE_REGION = "lymphocyte_dense"


def planted_vs_null(per_gene: pd.DataFrame, effects: pd.DataFrame, random_r: np.ndarray,
                    column: str = "pearson_r") -> tuple[pd.DataFrame, dict[str, float]]:
    """Join per-gene r with the planted effect kind; summary numbers for planted, null and random genes.

    random_r (R, G) random-baseline correlations of the same genes (any order; pooled as one sample).
    """
    eff = effects[["gene", "effect"]].drop_duplicates("gene")
    df = per_gene[["gene", column]].merge(eff, on="gene", how="left")
    df["effect"] = df["effect"].fillna("unknown")
    df["planted"] = ~df["effect"].isin(["null", "unknown"])
    planted = df.loc[df["planted"], column].to_numpy(np.float64)
    null = df.loc[df["effect"] == "null", column].to_numpy(np.float64)
    _, p_pn = wilcoxon(planted, null, "greater")
    _, p_nr = wilcoxon(null, random_r, "two-sided")
    _, p_pr = wilcoxon(planted, random_r, "greater")

    def med(a: np.ndarray) -> float:
        a = a[np.isfinite(a)]
        return float(np.median(a)) if a.size else float("nan")

    out = {"truth.n_planted": float(len(planted)), "truth.n_null": float(len(null)),
           "truth.planted_pearson_median": med(planted), "truth.null_pearson_median": med(null),
           "truth.random_pearson_median": med(np.asarray(random_r, dtype=np.float64).ravel()),
           "truth.planted_vs_null_wilcoxon_p": p_pn, "truth.null_vs_random_wilcoxon_p": p_nr,
           "truth.planted_vs_random_wilcoxon_p": p_pr}
    for kind, sub in df[df["planted"]].groupby("effect"):
        out[f"truth.{kind}_pearson_median"] = med(sub[column].to_numpy(np.float64))
    return df, out


def lymphocyte_overlap(scores: np.ndarray, fraction: np.ndarray, *, top_k: int, min_fraction: float
                       ) -> dict[str, float]:
    """Overlap of one slide's per-gene attention scores (N,) with its tiles' lymphocyte fractions (N,).

    A tile is a lymphocyte tile when more than ``min_fraction`` of it lies in ``lymphocyte_dense`` (the
    generator's aggregates are small, often under a tenth of a tile). top-k precision: share of the k
    highest-scoring tiles that are lymphocyte tiles, against ``chance`` = their share of all tiles; AUC of
    the scores for lymphocyte vs other tiles; enrichment: mean lymphocyte fraction of the top k / of all.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    f = np.asarray(fraction, dtype=np.float64).ravel()
    if s.size != f.size or s.size == 0:
        raise ValueError(f"need one score per tile, got {s.size} scores for {f.size} tiles")
    lymph = f > min_fraction
    k = min(top_k, s.size)
    top = np.argsort(-s, kind="stable")[:k]
    both = 0 < lymph.sum() < lymph.size
    return {
        "n_tiles": float(s.size), "n_lymphocyte_tiles": float(lymph.sum()), "chance": float(lymph.mean()),
        "top_k_precision": float(lymph[top].mean()),
        "auc": float(roc_auc_score(lymph, s)) if both else float("nan"),
        "enrichment": float(f[top].mean() / f.mean()) if f.mean() > 0 else float("nan"),
        "spearman": float(stats.spearmanr(s, f).statistic) if np.ptp(f) > 0 and np.ptp(s) > 0 else float("nan"),
    }


def heatmap_truth(gene_dirs: Mapping[str, Path], gt_dir: Path, cohort: str, patch_sizes: Mapping[str, float],
                  *, top_k: int = 10, min_fraction: float = 0.0) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per (gene, slide) ``lymphocyte_overlap`` of per-gene attention with the generator's lymphocyte
    regions, and per-gene means (``truth.<gene>.lymph_*``).

    gene_dirs: gene → folder of its attention files (``<slide_id>.h5``); patch_sizes: slide → level-0 px.
    A slide that cannot be evaluated is listed with its error and left out of the means.
    """
    from histcode.heatmaps.canvas import box_fractions, tile_boxes
    from histcode.mil.inference import read_attention
    from histcode.synth.truth import read_region_mask, region_codes

    code = region_codes()[LYMPHOCYTE_REGION]
    rows = []
    for gene, folder in gene_dirs.items():
        for h5 in sorted(Path(folder).glob("*.h5")):
            sid = h5.stem
            try:
                coords, raw, _, _ = read_attention(h5)
                mask, ds = read_region_mask(gt_dir, cohort, sid)
                frac = box_fractions(tile_boxes(coords, patch_sizes[sid], (ds, ds), mask.shape[:2]), mask == code)
                rows.append({"gene": gene, "slide_id": sid,
                             **lymphocyte_overlap(raw, frac, top_k=top_k, min_fraction=min_fraction), "error": ""})
            except (OSError, ValueError, KeyError) as exc:
                log.warning("heatmap truth of %s / %s failed: %s", gene, sid, exc)
                rows.append({"gene": gene, "slide_id": sid, "error": f"{type(exc).__name__}: {exc}"})
    cols = ["gene", "slide_id", *OVERLAP_KEYS, "error"]
    df = pd.DataFrame.from_records(rows, columns=cols)
    ok = df[df["error"] == ""]
    out: dict[str, float] = {"truth.heatmap_slides": float(len(ok)), "truth.heatmap_failed": float(len(df) - len(ok))}
    for gene, sub in ok.groupby("gene"):
        for col in ("top_k_precision", "chance", "auc", "enrichment", "spearman"):
            vals = sub[col].to_numpy(np.float64)
            out[f"truth.{gene}.lymph_{col}"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    return df, out


OVERLAP_KEYS = ("n_tiles", "n_lymphocyte_tiles", "chance", "top_k_precision", "auc", "enrichment", "spearman")
