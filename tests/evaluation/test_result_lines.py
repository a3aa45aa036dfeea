"""The evaluation results as lines (``histcode summary``) and as the MLflow run's Markdown description."""

from __future__ import annotations

from histcode.evaluation.result_lines import as_markdown, de_lines, external_lines

DE = {"n_genes": 205.0, "n_patients": 21.0, "pearson_r_median": 0.0013, "random_pearson_median": 0.0001,
      "wilcoxon_p": 0.519, "n_genes_significant_bh": 4.0, "cv_null_overall_p": 1 / 21, "cv_null_overall_z": 2.81,
      "cv_null_shuffles": 20.0, "truth.planted_pearson_median": 0.133, "truth.null_pearson_median": -0.036,
      "truth.planted_vs_null_wilcoxon_p": 2.46e-05, "pearson_r.CD19": 0.73}


def test_de_lines_give_the_calibrated_test_and_its_floor() -> None:
    """With 20 shuffles the smallest p the calibrated test can give is 1/21: the line says so beside p."""
    lines = de_lines(DE)
    assert lines[0] == ("differential expression (205 genes, 21 patients): median held-out Pearson 0.001 vs random "
                        "0.000 (Wilcoxon p=0.519); 4 genes BH-significant")
    assert lines[1] == ("  calibrated: mean r over all genes vs 20 shuffled-target CV runs p=0.0476 (z=2.81; "
                        "smallest possible p 0.0476)")
    assert lines[2] == "  planted genes median r 0.133 vs null -0.036 (Wilcoxon p=2.46e-05)"
    assert lines[3] == "  CD19 r=0.73"
    without = {k: v for k, v in DE.items() if not k.startswith(("cv_null", "truth.", "pearson_r."))}
    assert de_lines(without) == lines[:1]  # a real cohort without a null run: no line claims a test it lacks


def test_markdown_keeps_order_and_makes_details_a_list() -> None:
    md = as_markdown(["head one", "  detail a", "  detail b", "head two", "  detail c"])
    assert md == "head one\n\n- detail a\n- detail b\n\nhead two\n\n- detail c"


def test_external_lines_add_the_recalibration_when_it_ran() -> None:
    m = {"n": 20.0, "n_pos": 10.0, "auc": 0.986, "auc_ci_low": 0.95, "auc_ci_high": 1.0, "threshold": 0.42,
         "threshold_source": "registry", "brier": 0.08, "ece": 0.116, "encoder_version": 3.0, "mil_version": 4.0}
    (line,) = external_lines("site_c", m)
    assert line.startswith("site_c: 20 slides, AUC 0.986 [0.950, 1.000], accuracy n/a, ")
    assert "at threshold 0.42 (registry); Brier 0.080, ECE 0.116; encoder v3, MIL v4;" in line
    recal = {**m, "recalibrated_accuracy": 0.9, "recalibration": "platt", "n_calibration": 6.0,
             "test_accuracy_at_threshold": 0.75, "n_test": 14.0}
    assert external_lines("site_c", recal)[1] == ("platt recalibration on 6 slides: accuracy 0.750 → 0.900 on "
                                                  "14 test slides")
