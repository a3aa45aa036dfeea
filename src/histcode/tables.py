"""The paper's tables: which keys of each stage's metrics JSON DVC shows (``reports/tables/``).

Stages write every number to ``reports/metrics/<name>.json`` (folds, CIs, per-gene detail; a DVC output, not a
declared metric). ``dvc metrics show`` reads only ``reports/tables/<name>.json``: the few keys below, so each
stage's row stays readable (< 200 columns). Keys are ``fnmatch`` patterns over the metrics' flat keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

METRICS_DIR = "metrics"
TABLES_DIR = "tables"

# metrics family (first path part under reports/metrics, without .json) → declared keys, in table order
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "ingest": ("slides", "slides_tumour", "slides_normal", "patients", "failures"),
    "tile": ("n_slides", "n_done", "n_failed", "n_tiles", "tissue_area_mm2"),
    "pretrain": ("epochs_done", "steps", "final_loss", "tiles_per_s"),
    "extract": ("n_slides", "tiles", "tiles_per_s", "*/slides_failed"),
    # Table 1's AUC column, one key per method (CIs, accuracy, ΔAUC, calibration: reports/mil/table1.md)
    "mil": ("*.auc",),
    # attention vs the truth: HistCode's model, gated attention, and mean pooling's chance level (every method:
    # reports/metrics/mil_attention.json)
    "mil_attention": ("clam_sb.mean_top_k_precision", "clam_sb.mean_iou", "gated_attention.mean_top_k_precision",
                      "gated_attention.mean_iou", "mean.mean_iou"),
    "de_targets": ("patients", "pairs", "target_genes", "de_label_rate"),
    "de": ("n_genes", "pearson_r_median", "random_pearson_median", "wilcoxon_p", "n_genes_significant_bh",
           "auc_median"),
    "tune_mil": ("best_value", "n_trials", "n_complete", "n_pruned"),
}


def table_path(metrics_json: str | Path) -> tuple[str, Path] | None:
    """``reports/metrics/<rel>.json`` → (family, ``reports/tables/<rel>.json``) when the family has a table."""
    p = Path(metrics_json)
    parts = p.parts
    if METRICS_DIR not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index(METRICS_DIR)
    rel = parts[i + 1:]
    if not rel:
        return None
    family = Path(rel[0]).stem
    if family not in TABLE_KEYS:
        return None
    return family, Path(*parts[:i], TABLES_DIR, *rel)


def table(family: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The declared subset of ``metrics`` for ``family`` (numbers only, in TABLE_KEYS order). A ``*`` stands
    for one name part: ``*.auc`` matches ``clam_sb.auc``, not ``clam_sb.fold0.auc``."""
    out: dict[str, Any] = {}
    for pattern in TABLE_KEYS[family]:
        for key in sorted(k for k in metrics if fnmatchcase(k, pattern) and k.count(".") == pattern.count(".")):
            v = metrics[key]
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[key] = round(float(v), 4) if isinstance(v, float) else v
    return out
