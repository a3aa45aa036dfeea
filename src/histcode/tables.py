"""The paper's tables: which keys of each stage's metrics JSON DVC shows (``reports/tables/``).

Stages write every number to ``reports/metrics/<name>.json`` (folds, CIs, per-gene detail; a DVC output, not a
declared metric). ``dvc metrics show`` reads only ``reports/tables/<name>.json``: the few keys below, so each
stage's row stays readable (< 200 columns). Keys are ``fnmatch`` patterns over the metrics' flat keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

METRICS_DIR = "metrics"
TABLES_DIR = "tables"

# metrics family (first path part under reports/metrics, without .json) → declared keys, in table order
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "ingest": ("slides", "slides_tumour", "slides_normal", "patients", "failures", "preparation_confounded",
               "site_only_auc"),
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
    # wilcoxon_p: the paper's rank-sum vs random (not calibrated at these n); cv_null_overall_*: the calibrated
    # tests over all genes against the shuffled-target CV null (mean r / top-tenth mean r), when train_de ran one
    "de": ("n_genes", "pearson_r_median", "random_pearson_median", "wilcoxon_p", "n_genes_significant_bh",
           "auc_median", "cv_null_overall_p", "cv_null_overall_top_p"),
    # best_value flatters (best of n_trials on the folds it was chosen on); heldout_*: both settings on the rest,
    # and the 95% interval of the tuned settings' gain over resampled held-out patients
    "tune_mil": ("best_value", "n_trials", "n_complete", "n_pruned", "heldout_tuned", "heldout_current",
                 "heldout_gain_ci_low", "heldout_gain_ci_high"),
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
        for key in sorted(k for k in metrics if key_matches(k, pattern)):
            v = metrics[key]
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[key] = round(float(v), 4) if isinstance(v, float) else v
    return out


@dataclass(frozen=True)
class MetricsFile:
    """A stage's metrics file as readers besides DVC use it (``histcode summary``): its name under
    ``reports/metrics/`` (``{cohort}``: one file per cohort) and its keys, ``fnmatch`` patterns as above."""

    name: str
    required: tuple[str, ...]  # every run of the stage writes these
    optional: tuple[str, ...] = ()  # some runs only (synthetic truth, scatter genes, bootstrap CIs)

    def path(self, reports_dir: str | Path, cohort: str = "") -> Path:
        return Path(reports_dir) / METRICS_DIR / f"{self.name.format(cohort=cohort)}.json"

    def declares(self, key: str) -> bool:
        return any(key_matches(key, p) for p in (*self.required, *self.optional))

    def missing(self, metrics: Mapping[str, Any]) -> list[str]:
        """The required patterns no key of ``metrics`` matches."""
        return [p for p in self.required if not any(key_matches(k, p) for k in metrics)]


def key_matches(key: str, pattern: str) -> bool:
    """A metrics key against a declared pattern: ``*`` stands for one name part (``*.auc`` is not ``a.fold0.auc``)."""
    return fnmatchcase(key, pattern) and key.count(".") == pattern.count(".")


# The one declaration of what the stages write and summary reads (the writer, ``tracking.log_metrics``, warns
# when a required key is missing; ``histcode.summary`` reads no key that is not declared here).
METRICS_FILES: dict[str, MetricsFile] = {
    "ingest": MetricsFile("ingest/{cohort}", ("slides", "slides_tumour", "slides_normal", "patients", "failures"),
                          # what tissue preparation and source site say about the label (files from round 21 on)
                          ("slides_frozen", "slides_ffpe", "slides_preparation_unknown", "preparation_confounded",
                           "sites", "sites_one_class", "site_only_auc", "site_confounded",
                           # rows left out as copies of one file (round 25 on): failures/<table>/duplicate_<kind>
                           "failures/*/duplicate_*")),
    "tile": MetricsFile("tile/{cohort}", ("n_slides", "n_done", "n_failed", "n_tiles"),
                        # slides tiled from a coarser scan (files from round 20 on); kept with unreadable regions
                        # (round 24 on)
                        ("n_upsampled", "n_damaged")),
    # per encoder: slides with some unreadable tiles (kept) and failed slides (failures.csv beside the features)
    "extract": MetricsFile("extract/{cohort}", ("n_slides", "*/slides_partial", "*/slides_failed")),
    "pretrain": MetricsFile("pretrain", ("final_loss", "epochs_done", "steps", "tiles_per_s")),
    "mil": MetricsFile("mil", ("primary_pooling", "*.auc", "*.accuracy", "*.balanced_accuracy"),
                       ("cv_groups",)),  # patient | site (files from round 21 on)
    "mil_attention": MetricsFile("mil_attention", ("n_rendered", "n_failed", "truth_evaluated"),
                                 ("*.mean_top_k_precision", "*.mean_iou")),
    "de": MetricsFile("de", ("n_genes", "n_patients", "pearson_r_median", "random_pearson_median", "wilcoxon_p",
                             "n_genes_significant_bh"),
                      ("cv_null_overall_p", "cv_null_overall_top_p", "cv_null_overall_z", "cv_null_shuffles",
                       "truth.planted_pearson_median", "truth.null_pearson_median", "truth.planted_vs_null_wilcoxon_p",
                       "truth.*.lymph_auc", "pearson_r.*")),
    "tune_mil": MetricsFile("tune_mil", ("objective", "direction", "best_value", "n_complete"),
                            # the settings scored on the folds the search never scored (round 25 on); the 95%
                            # interval of the tuned settings' gain over resampled held-out patients (round 26 on)
                            ("heldout_folds", "heldout_tuned", "heldout_current", "heldout_holds",
                             "heldout_gain_ci_low", "heldout_gain_ci_high")),
    # `histcode tune de` (no DVC stage): the registered DE model's study, same keys
    "tune_de": MetricsFile("tune_de", ("objective", "direction", "best_value", "n_complete"),
                           ("heldout_folds", "heldout_tuned", "heldout_current", "heldout_holds",
                            "heldout_gain_ci_low", "heldout_gain_ci_high")),
    "eval": MetricsFile("eval_{cohort}", ("auc", "accuracy"),
                        ("auc_ci_low", "auc_ci_high", "accuracy_ci_low", "accuracy_ci_high",
                         "encoder_version", "mil_version",  # the versions evaluated (registry runs only)
                         "model",  # the MIL model's URI: models:/histcode-mil@<alias> (or --model's)
                         "n", "n_pos",  # slides scored, tumour among them (one class: no AUC)
                         "sensitivity", "specificity",  # at the stored threshold, for each class present
                         "n_seen_in_training", "training_cohort")),  # slides left out: the model saw them (round 25)
}


def one_class_auc(n: float, n_pos: float) -> str | None:
    """What an evaluation of one class shows for its AUC (e.g. CPTAC-BRCA as IDC labels it: tumour slides only),
    else None: with one class there is no AUC and accuracy is that class's recall."""
    if n and n_pos in (0, n):
        return f"n/a (only {'tumour' if n_pos else 'normal'} slides: accuracy is their recall)"
    return None


#: ``mil.json``'s ``cv_groups`` (``mil.cv_groups``) as Table 1, its figure and the summary name the CV
CV_NAMES = {"patient": "patient-level", "site": "site-preserved"}


def metrics_file_of(json_path: str | Path) -> MetricsFile | None:
    """The declaration a ``reports/metrics/...json`` path is written under (None: not declared)."""
    p = Path(json_path)
    if METRICS_DIR not in p.parts:
        return None
    rel = Path(*p.parts[len(p.parts) - 1 - p.parts[::-1].index(METRICS_DIR) + 1:]).with_suffix("").as_posix()
    for f in METRICS_FILES.values():
        head, _, tail = f.name.partition("{cohort}")
        if rel == f.name or ("{cohort}" in f.name and rel.startswith(head) and rel.endswith(tail)
                             and "/" not in rel[len(head):len(rel) - len(tail)] and len(rel) > len(head) + len(tail)):
            return f
    return None
