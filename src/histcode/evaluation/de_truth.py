"""Synthetic cohorts only: DE results against the generator's ground truth (``histcode.io.truth``).

1. Planted vs null genes: held-out Pearson of genes with a planted morphology effect (lymphocyte,
   cellularity, tumour) vs genes without (null), a one-sided Wilcoxon rank-sum (planted > null), and
   null vs random baseline (two-sided: null genes should be indistinguishable from random).
2. Per-gene heatmaps vs where the generator placed lymphocytes (its per-cell lymphocyte count map: scattered
   TILs, dense infiltrates and aggregates): for each per-gene attention file, the top-k precision of its
   highest-attention tiles for lymphocyte-rich tiles (chance = their share), the AUC of attention for rich vs
   other tiles, the density enrichment of the top k and the Spearman correlation of attention with tile
   density, over all tiles and within the tumour region. The tumour model's attention on the same slides
   is the reference a per-gene heatmap must beat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from histcode.metrics.de_stats import wilcoxon

log = logging.getLogger(__name__)

def planted_vs_null(per_gene: pd.DataFrame, effects: pd.DataFrame, random_r: np.ndarray,
                    column: str = "pearson_r") -> tuple[pd.DataFrame, dict[str, float]]:
    """Join per-gene r with the planted effect kind; summary numbers for planted, null and random genes.

    random_r (R, G) random-baseline correlations of the same genes (any order; pooled as one sample). When
    ``per_gene`` has the ``significant`` column (better than random after BH), the discoveries are split into
    planted genes and null genes (false discoveries).
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

    rand = np.asarray(random_r, dtype=np.float64).ravel()
    fin = [a[np.isfinite(a)] for a in (planted, null, rand)]
    out = {"truth.n_planted": float(len(planted)), "truth.n_null": float(len(null)),
           "truth.planted_pearson_mean": float(fin[0].mean()) if fin[0].size else float("nan"),
           "truth.planted_pearson_min": float(fin[0].min()) if fin[0].size else float("nan"),
           "truth.n_planted_below_-0.1": float((fin[0] < -0.1).sum()),
           "truth.null_abs_pearson_mean": float(np.abs(fin[1]).mean()) if fin[1].size else float("nan"),
           "truth.random_abs_pearson_mean": float(np.abs(fin[2]).mean()) if fin[2].size else float("nan"),
           "truth.planted_pearson_median": med(planted), "truth.null_pearson_median": med(null),
           "truth.random_pearson_median": med(np.asarray(random_r, dtype=np.float64).ravel()),
           "truth.planted_vs_null_wilcoxon_p": p_pn, "truth.null_vs_random_wilcoxon_p": p_nr,
           "truth.planted_vs_random_wilcoxon_p": p_pr}
    for kind, sub in df[df["planted"]].groupby("effect"):
        out[f"truth.{kind}_pearson_median"] = med(sub[column].to_numpy(np.float64))
    if "significant" in per_gene.columns:
        sig = df["gene"].isin(per_gene.loc[per_gene["significant"].fillna(False).astype(bool), "gene"])
        out["truth.n_significant_planted"] = float((sig & df["planted"]).sum())
        out["truth.n_significant_null"] = float((sig & (df["effect"] == "null")).sum())
    return df, out


def lymphocyte_overlap(scores: np.ndarray, density: np.ndarray, *, top_k: int, min_density: float,
                       tumour: np.ndarray | None = None) -> dict[str, float]:
    """Overlap of one slide's attention scores (N,) with its tiles' lymphocyte densities (N,, nuclei/mm²).

    Lymphocyte-rich tiles have at least ``min_density`` lymphocytes per mm². top-k precision: share of the k
    highest-scoring tiles that are rich, against ``chance`` = their share of all tiles; AUC of the scores for
    rich vs other tiles; enrichment: mean density of the top k / of all tiles; Spearman of scores with
    density. ``tumour`` (N,) bool marks the tumour region (tumour and the infiltrates in it): the same AUC and
    Spearman restricted to it (``auc_tumour``, ``spearman_tumour``) separate a lymphocyte heatmap from a
    tumour heatmap, which scores a whole tumour region alike.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    d = np.asarray(density, dtype=np.float64).ravel()
    if s.size != d.size or s.size == 0:
        raise ValueError(f"need one score per tile, got {s.size} scores for {d.size} tiles")
    rich = d >= min_density
    k = min(top_k, s.size)
    top = np.argsort(-s, kind="stable")[:k]
    t = np.ones_like(rich) if tumour is None else np.asarray(tumour, dtype=bool).ravel()

    def auc(sel: np.ndarray) -> float:
        return float(roc_auc_score(rich[sel], s[sel])) if 0 < rich[sel].sum() < sel.sum() else float("nan")

    def rho(sel: np.ndarray) -> float:
        return float(stats.spearmanr(s[sel], d[sel]).statistic) \
            if sel.sum() > 2 and np.ptp(s[sel]) > 0 and np.ptp(d[sel]) > 0 else float("nan")

    every = np.ones_like(rich)
    return {
        "n_tiles": float(s.size), "n_lymphocyte_tiles": float(rich.sum()), "chance": float(rich.mean()),
        "top_k_precision": float(rich[top].mean()), "auc": auc(every), "auc_tumour": auc(t),
        "enrichment": float(d[top].mean() / d.mean()) if d.mean() > 0 else float("nan"),
        "spearman": rho(every), "spearman_tumour": rho(t),
    }


def tile_truth(gt_dir: Path, cohort: str, slide_id: str, coords: np.ndarray, patch_size: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per tile: lymphocyte density (nuclei per mm² of tile, from the generator's lymphocyte map) and whether
    most of the tile is tumour or lymphocyte aggregate (region mask)."""
    from histcode.io.truth import read_lymphocyte_map, read_region_mask, read_slide_truth, region_codes
    from histcode.metrics.canvas import box_fractions, tile_boxes

    counts, ds = read_lymphocyte_map(gt_dir, cohort, slide_id)
    mask, _ = read_region_mask(gt_dir, cohort, slide_id)
    truth = read_slide_truth(gt_dir)
    mpp = float(truth.loc[(truth["cohort"] == cohort) & (truth["slide_id"] == slide_id), "mpp"].iloc[0])
    boxes = tile_boxes(coords, patch_size, (ds, ds), mask.shape[:2])
    cell_mm2 = (ds * mpp / 1000.0) ** 2
    density = box_fractions(boxes, counts) / cell_mm2  # mean nuclei per mask cell → per mm²
    codes = region_codes()  # aggregates of tumour slides sit in/at the tumour: count them as tumour
    tumour = box_fractions(boxes, np.isin(mask, [codes["tumour"], codes["lymphocyte_dense"]])) > 0.5
    return density, tumour


METRIC_KEYS = ("top_k_precision", "chance", "auc", "auc_tumour", "enrichment", "spearman", "spearman_tumour")


def heatmap_truth(gene_dirs: Mapping[str, Path], gt_dir: Path, cohort: str, patch_sizes: Mapping[str, float],
                  *, top_k: int = 10, min_density: float = 2000.0, reference_dir: Path | None = None
                  ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per (gene, slide) ``lymphocyte_overlap`` of per-gene attention with the generator's lymphocytes, and
    per-gene means (``truth.<gene>.lymph_*``).

    gene_dirs: gene → folder of its attention files (``<slide_id>.h5``); patch_sizes: slide → level-0 px.
    ``reference_dir``: the tumour model's attention files; the same numbers on the same slides
    (``truth.reference.lymph_*``) say how much of the overlap a tumour heatmap alone would give.
    A slide that cannot be evaluated is listed with its error and left out of the means.
    """
    from histcode.io.attention import read_attention

    sources = dict(gene_dirs)
    slides = sorted({h5.stem for folder in gene_dirs.values() for h5 in Path(folder).glob("*.h5")})
    rows = []
    for name, folder in [*sources.items(), *([("reference", Path(reference_dir))] if reference_dir else [])]:
        wanted = slides if name == "reference" else sorted(h5.stem for h5 in Path(folder).glob("*.h5"))
        for sid in wanted:
            try:
                coords, raw, _, _ = read_attention(Path(folder) / f"{sid}.h5")
                density, tumour = tile_truth(gt_dir, cohort, sid, coords, patch_sizes[sid])
                rows.append({"gene": name, "slide_id": sid, "error": "",
                             **lymphocyte_overlap(raw, density, top_k=top_k, min_density=min_density,
                                                     tumour=tumour)})
            except (OSError, ValueError, KeyError, IndexError) as exc:
                log.warning("heatmap truth of %s / %s failed: %s", name, sid, exc)
                rows.append({"gene": name, "slide_id": sid, "error": f"{type(exc).__name__}: {exc}"})
    df = pd.DataFrame.from_records(rows, columns=["gene", "slide_id", *OVERLAP_KEYS, "error"])
    ok = df[df["error"] == ""]
    genes = ok[ok["gene"] != "reference"]
    out: dict[str, float] = {"truth.heatmap_slides": float(len(genes)),
                             "truth.heatmap_failed": float((df["error"] != "").sum())}
    ref = ok[ok["gene"] == "reference"].set_index("slide_id")["auc"]
    for gene, sub in ok.groupby("gene"):
        for col in METRIC_KEYS:
            vals = sub[col].to_numpy(np.float64)
            out[f"truth.{gene}.lymph_{col}"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        auc = sub.set_index("slide_id")["auc"].dropna()
        out[f"truth.{gene}.lymph_auc_p"] = _signed_rank_p(auc.to_numpy() - 0.5)  # AUC > chance across slides
        if gene != "reference" and len(ref):
            both = auc.index.intersection(ref.dropna().index)  # AUC > the tumour heatmap's, paired by slide
            out[f"truth.{gene}.lymph_auc_vs_reference_p"] = _signed_rank_p((auc[both] - ref[both]).to_numpy())
    return df, out


def _signed_rank_p(diff: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p-value that ``diff`` is > 0 (NaN with fewer than 5 non-zero values)."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d) & (d != 0)]
    return float(stats.wilcoxon(d, alternative="greater").pvalue) if d.size >= 5 else float("nan")


OVERLAP_KEYS = ("n_tiles", "n_lymphocyte_tiles", "chance", "top_k_precision", "auc", "auc_tumour", "enrichment",
                "spearman", "spearman_tumour")


def truth_maps(gene_dirs: Mapping[str, Path], gt_dir: Path, cohort: str, slide_id: str, patch_size: float,
               reference_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Tile-grid maps of one slide: lymphocyte density and each attention source, as within-slide
    percentile ranks (NaN where there is no tile), for ``de_plots.plot_truth_maps``."""
    from scipy.stats import rankdata

    from histcode.io.attention import read_attention

    sources = {g: Path(d) / f"{slide_id}.h5" for g, d in gene_dirs.items()}
    if reference_dir is not None:
        sources["tumour model"] = Path(reference_dir) / f"{slide_id}.h5"
    values: dict[str, np.ndarray] = {}
    coords = None
    for name, h5 in sources.items():
        if h5.exists():
            c, raw, _, _ = read_attention(h5)
            coords = c if coords is None else coords
            values[f"{name} attention"] = raw
    if coords is None:
        raise FileNotFoundError(f"no attention file for {slide_id} under {list(gene_dirs.values())}")
    density, _ = tile_truth(gt_dir, cohort, slide_id, coords, patch_size)
    values = {"lymphocytes/mm² (truth)": density, **values}
    gx = np.round(coords[:, 0] / patch_size).astype(int)
    gy = np.round(coords[:, 1] / patch_size).astype(int)
    gx, gy = gx - gx.min(), gy - gy.min()
    out = {}
    for name, v in values.items():
        grid = np.full((gy.max() + 1, gx.max() + 1), np.nan)
        grid[gy, gx] = (rankdata(v) - 1) / max(len(v) - 1, 1)
        out[name] = grid
    return out
