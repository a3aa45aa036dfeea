"""The evaluation results as readable lines: ``histcode summary`` prints them and the stage's MLflow run shows them
as its description, so the run page a user opens in the UI says what the console said, from one writer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from histcode.tables import one_class_auc


def de_lines(de: Mapping[str, Any]) -> list[str]:
    """``evaluate_de``'s result (reports/metrics/de.json): the paper's test against random predictions, the
    calibrated one against the method's own cross-validation on shuffled targets, and for synthetic cohorts the
    generator's truth. The first line is the headline; the others are indented details."""
    nan = float("nan")
    lines = [
        f"differential expression ({int(de.get('n_genes', 0))} genes, {int(de.get('n_patients', 0))} patients): "
        f"median held-out Pearson {de.get('pearson_r_median', nan):.3f} vs random "
        f"{de.get('random_pearson_median', nan):.3f} (Wilcoxon p={de.get('wilcoxon_p', nan):.3g}); "
        f"{int(de.get('n_genes_significant_bh', 0))} genes BH-significant"
    ]
    if "cv_null_overall_p" in de and "cv_null_shuffles" in de:
        lines.append(
            f"  calibrated: mean r over all genes vs {int(de['cv_null_shuffles'])} shuffled-target CV runs "
            f"p={de['cv_null_overall_p']:.3g} (z={de.get('cv_null_overall_z', nan):.2f}; smallest possible p "
            f"{1 / (int(de['cv_null_shuffles']) + 1):.3g})"
        )
    if "truth.planted_pearson_median" in de:
        lines.append(
            f"  planted genes median r {de['truth.planted_pearson_median']:.3f} vs null "
            f"{de['truth.null_pearson_median']:.3f} (Wilcoxon p={de['truth.planted_vs_null_wilcoxon_p']:.3g})"
        )
    heat = sorted(k.split(".")[1] for k in de if k.startswith("truth.") and k.endswith(".lymph_auc"))
    genes = [g for g in heat if g != "reference"]
    if genes:  # truth.reference: the tumour model's attention scored the same way (what a heatmap must beat)
        lines.append("  per-gene heatmaps vs lymphocyte truth, AUC: " + ", ".join(
            f"{g} {de[f'truth.{g}.lymph_auc']:.2f}" for g in genes)
            + (f" (tumour-model attention {de['truth.reference.lymph_auc']:.2f})" if "reference" in heat else ""))
    scatter = [k.split(".", 1)[1] for k in de if k.startswith("pearson_r.")]
    if scatter:
        lines.append("  " + ", ".join(f"{g} r={de['pearson_r.' + g]:.2f}" for g in scatter))
    return lines


def external_line(cohort: str, m: Mapping[str, Any]) -> str:
    """``evaluate-external``'s result: AUC, accuracy and balanced accuracy with CIs at the stored threshold; a
    cohort of one class (CPTAC-BRCA from IDC labels tumour slides only) has no AUC, and says so."""

    def ci(k: str) -> str:
        return f"{m[k]:.3f} [{m[k + '_ci_low']:.3f}, {m[k + '_ci_high']:.3f}]" if k in m else "n/a"

    models = (f"encoder v{int(m['encoder_version'])}, MIL v{int(m['mil_version'])}" if "encoder_version" in m
              else f"model {m['model']}")  # --model: no registered encoder/MIL pair
    n = int(m.get("n", 0))
    auc = one_class_auc(n, int(m.get("n_pos", 0))) or ci("auc")
    recall = "".join(f", {k} {m[k]:.3f}" for k in ("sensitivity", "specificity") if k in m)
    seen = int(m.get("n_seen_in_training", 0))
    left = f" ({seen} more left out: seen in training cohort {m.get('training_cohort')})" if seen else ""
    return (f"{cohort}: {n} slides{left}, AUC {auc}, accuracy {ci('accuracy')}, "
            f"balanced accuracy {ci('balanced_accuracy')}{recall} at threshold {m['threshold']:.3g} "
            f"({m['threshold_source']}); Brier {m['brier']:.3f}, ECE {m['ece']:.3f}; {models}; "
            f"metrics in reports/metrics/eval_{cohort}.json")


def external_lines(cohort: str, m: Mapping[str, Any]) -> list[str]:
    """The external result line and, when a recalibration ran, what it changed on the test slides."""
    lines = [external_line(cohort, m)]
    if "recalibrated_accuracy" in m:
        lines.append(f"{m['recalibration']} recalibration on {int(m['n_calibration'])} slides: accuracy "
                     f"{m['test_accuracy_at_threshold']:.3f} → {m['recalibrated_accuracy']:.3f} on "
                     f"{int(m['n_test'])} test slides")
    return lines


def as_markdown(lines: Sequence[str]) -> str:
    """Console lines as a run description: unindented lines as paragraphs, indented details under them as bullet
    lists (MLflow renders the description as Markdown, where consecutive lines would run into one paragraph)."""
    blocks: list[str] = []
    for line in lines:
        if line.startswith(" ") and blocks and blocks[-1].startswith("- "):
            blocks[-1] += f"\n- {line.strip()}"
        else:
            blocks.append(f"- {line.strip()}" if line.startswith(" ") else line)
    return "\n\n".join(blocks)
