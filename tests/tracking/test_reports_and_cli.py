"""Defects 7 and 9: summary/promote say what is true here; progress, loggers and errors read well in logs."""

from __future__ import annotations

import ast
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from histcode import console
from histcode.registry.commands import verdict
from histcode.summary import summary_lines

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    r = tmp_path / "reports"
    m = r / "metrics"
    for c in ("tcga_brca", "old_cohort"):
        _write(m / "tile" / f"{c}.json", {"n_tiles": 100, "n_done": 4, "n_slides": 4, "n_failed": 0})
    _write(m / "pretrain.json", {"final_loss": 1.25, "epochs_done": 7.0, "steps": 70.0, "tiles_per_s": 50.0})
    _write(m / "eval_old_external.json", {"auc": 0.9})  # results of a cohort no longer configured
    return r


COHORTS = {"tcga_brca": "train", "cptac_brca": "external"}


def test_summary_only_configured_cohorts_and_writer_keys(reports: Path) -> None:
    text = "\n".join(summary_lines(reports, reports / "figures", COHORTS))
    assert "tiles  tcga_brca" in text and "old_cohort" not in text and "old_external" not in text
    assert "pretrain: final loss 1.25, epochs 7, steps 70, tiles/s 50" in text
    assert "tiles  tcga_brca: 100 tiles from 4/4 slides (0 failed)\n" in text + "\n"
    _write(reports / "metrics" / "tile" / "cptac_brca.json",
           {"n_tiles": 100, "n_done": 4, "n_slides": 4, "n_failed": 0, "n_upsampled": 1})
    text = "\n".join(summary_lines(reports, reports / "figures", COHORTS))
    assert "tiles  cptac_brca: 100 tiles from 4/4 slides (0 failed, 1 enlarged from a coarser scan)" in text
    _write(reports / "metrics" / "tile" / "cptac_brca.json",
           {"n_tiles": 100, "n_done": 4, "n_slides": 4, "n_failed": 0, "n_upsampled": 0, "n_damaged": 2})
    text = "\n".join(summary_lines(reports, reports / "figures", COHORTS))
    assert ("tiles  cptac_brca: 100 tiles from 4/4 slides (0 failed, 2 damaged: see the reason column of "
            "process_list.csv)") in text


def test_summary_attention_line_is_the_registered_models(reports: Path) -> None:
    m = reports / "metrics"
    _write(m / "mil.json", {"primary_pooling": "clam_sb", "clam_sb.auc": 0.98, "abmil.auc": 0.95})
    _write(m / "mil_attention.json", {"abmil.mean_iou": 0.1, "abmil.mean_top_k_precision": 0.2,
                                      "clam_sb.mean_iou": 0.527, "clam_sb.mean_top_k_precision": 1.0,
                                      "clam_sb.mean_iou_cells": 0.4})
    (line,) = [ln for ln in summary_lines(reports, reports / "figures", COHORTS) if ln.startswith("attention")]
    assert line == "attention vs truth (clam_sb, tumour bed): top-k precision 1.000, Otsu IoU 0.527"


def test_summary_external_only_when_evaluated_here(reports: Path) -> None:
    m = reports / "metrics"
    lines = summary_lines(reports, reports / "figures", COHORTS)
    assert any("external cptac_brca: not evaluated in this workspace" in ln for ln in lines)
    ext = _write(m / "eval_cptac_brca.json", {"auc": 0.81, "auc_ci_low": 0.7, "auc_ci_high": 0.9,
                                               "encoder_version": 2.0, "mil_version": 5.0})
    mil = _write(m / "mil.json", {})
    old = time.time() - 3600
    os.utime(ext, (old, old))  # evaluated before train_mil last ran: the champions it used may still be current
    lines = summary_lines(reports, reports / "figures", COHORTS)
    at = next(i for i, ln in enumerate(lines) if ln.startswith("external cptac_brca: AUC 0.810 [0.700, 0.900]"))
    assert lines[at].endswith("(histcode-encoder v2 + histcode-mil v5, the champions then)")
    assert lines[at + 1].startswith("  train_mil has rerun since; if `make promote` moved a champion")
    os.utime(ext, (time.time(), time.time()))
    os.utime(mil, (old, old))
    lines = summary_lines(reports, reports / "figures", COHORTS)
    assert any(ln.startswith("external cptac_brca: AUC 0.810 [0.700, 0.900]") for ln in lines)
    assert not any("rerun since" in ln for ln in lines)
    # `histcode evaluate-external --alias challenger` (a pilot whose gate refused promotion): not "the champions"
    _write(m / "eval_cptac_brca.json", {"auc": 0.85, "auc_ci_low": 0.5, "auc_ci_high": 1.0, "encoder_version": 1.0,
                                         "mil_version": 1.0, "model": "models:/histcode-mil@challenger"})
    (line,) = [ln for ln in summary_lines(reports, reports / "figures", COHORTS) if ln.startswith("external")]
    assert line.endswith("(histcode-encoder v1 + histcode-mil v1, @challenger then, not the champions)"), line
    # slides the model trained on were left out of the metrics: said, and where they are listed
    _write(m / "eval_cptac_brca.json", {"auc": 0.85, "n_seen_in_training": 2.0, "training_cohort": "tcga_brca"})
    (line,) = [ln for ln in summary_lines(reports, reports / "figures", COHORTS) if ln.startswith("external")]
    assert line.endswith("; 2 slide(s) left out, seen in training cohort tcga_brca: see seen_in_training in "
                         f"{m / 'eval_cptac_brca.json'}"), line


def test_summary_external_of_one_class(reports: Path) -> None:
    """CPTAC-BRCA as IDC labels it has tumour slides only: no AUC to show, accuracy is their recall."""
    _write(reports / "metrics" / "eval_cptac_brca.json", {
        "auc": float("nan"), "auc_ci_low": float("nan"), "auc_ci_high": float("nan"), "accuracy": 0.95,
        "accuracy_ci_low": 0.85, "accuracy_ci_high": 1.0, "n": 20.0, "n_pos": 20.0})
    (line,) = [ln for ln in summary_lines(reports, reports / "figures", COHORTS) if ln.startswith("external")]
    assert line.startswith("external cptac_brca: AUC n/a (only tumour slides: accuracy is their recall)  "
                           "accuracy 0.950 [0.850, 1.000]"), line


def test_eval_results_are_not_committed() -> None:
    tracked = subprocess.run(["git", "ls-files", "reports/metrics", "reports/plots"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert not [p for p in tracked if "/eval_" in p or "/mil_external_" in p]


def test_promote_verdicts() -> None:
    assert verdict(False, had_champion=False) == "not promoted (no @champion yet)"
    assert verdict(False, had_champion=True) == "kept @champion"
    assert verdict(True, had_champion=False) == "PROMOTED to @champion"
    assert verdict(True, had_champion=True, dry_run=True).startswith("would promote")


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "histcode.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


def test_unknown_model_or_missing_alias_is_one_line(tmp_path: Path, fresh_mlflow,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    fresh_mlflow(tmp_path, monkeypatch)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HISTCODE_PROGRESS": "lines"}
    bad = _cli(["promote", "-m", "histcode-nope"], tmp_path, env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "unknown model histcode-nope; registered models: histcode-encoder" in bad.stderr
    missing = _cli(["promote", "-m", "histcode-mil"], tmp_path, env)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert [ln for ln in missing.stderr.splitlines() if "error" in ln] == [
        ln for ln in missing.stderr.splitlines() if "histcode-mil@challenger" in ln]
    cfg = _cli(["summary", "--params", "nowhere.yaml"], tmp_path, env)
    assert cfg.returncode == 2 and "Traceback" not in cfg.stderr
    assert "nowhere.yaml: params file not found" in cfg.stderr


def test_stage_script_config_error_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("base:\n  seed: 1\n  typo_key: 3\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, str(ROOT / "pipelines" / "stain_ref.py"), "--params", "params.yaml"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "stain_ref: error:" in out.stderr and "typo_key" in out.stderr


def test_progress_is_lines_not_carriage_returns(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HISTCODE_PROGRESS", "lines")
    with caplog.at_level(logging.INFO, logger="histcode.console"):
        out = list(console.tqdm(["s1", "s2", "s3"], desc="tile toy", unit="slide"))
    assert out == ["s1", "s2", "s3"]
    msgs = [r.getMessage() for r in caplog.records if r.name == "histcode.console"]
    assert [m.split(",")[0] for m in msgs] == ["tile toy: 1/3 slide (33%)", "tile toy: 2/3 slide (67%)",
                                               "tile toy: 3/3 slide (100%)"]
    assert not any("\r" in m for m in msgs)
    caplog.clear()
    monkeypatch.setattr(console, "LOG_EVERY_S", 3600.0)
    with caplog.at_level(logging.INFO, logger="histcode.console"):
        bar = console.tqdm(total=100_000, desc="extract adco", unit="tile")
        for _ in range(100):
            bar.update(1000)
        bar.set_postfix(failed=0)
        bar.close()
    msgs = [r.getMessage() for r in caplog.records if r.name == "histcode.console"]
    assert len(msgs) == 1 and msgs[0].startswith("extract adco: 100000/100000 tile (100%)") and "failed=0" in msgs[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="histcode.console"):  # a fast loop inside a step: its last line only
        assert list(console.tqdm(range(48), desc="mil predict", unit="slide", per_item=False)) == list(range(48))
    msgs = [r.getMessage() for r in caplog.records if r.name == "histcode.console"]
    assert len(msgs) == 1 and msgs[0].startswith("mil predict: 48/48 slide (100%)") and "done in" in msgs[0]


def test_progress_is_a_bar_in_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from tqdm import tqdm as real_tqdm

    monkeypatch.setenv("HISTCODE_PROGRESS", "bars")
    bar = console.tqdm(total=3, disable=True)
    assert isinstance(bar, real_tqdm)
    bar.close()


def test_summary_line_is_the_stage_table() -> None:
    line = console.summary_line("tile tcga", {"n_slides": 48, "n_done": 47, "n_failed": 1, "n_tiles": 10143,
                                              "tissue_area_mm2": 160.385408, "tiles_per_slide_min": 200}, "tile")
    assert line == "tile tcga: n_slides=48, n_done=47, n_failed=1, n_tiles=10143, tissue_area_mm2=160.4"


def _root_logger_calls(path: Path) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "logging"
                and node.func.attr in {"debug", "info", "warning", "error", "exception", "critical"}):
            bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return bad


def test_no_root_logger_and_no_raw_tqdm() -> None:
    files = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "pipelines").glob("*.py"))
    assert not [b for f in files for b in _root_logger_calls(f)], "log through logging.getLogger(__name__)"
    raw = [str(f.relative_to(ROOT)) for f in files if f.name != "console.py"
           and ("from tqdm import tqdm" in f.read_text() or "from tqdm.auto import tqdm" in f.read_text())]
    assert not raw, f"use histcode.console.tqdm (log lines under DVC): {raw}"


def test_mlflow_artifact_bars_are_off_in_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``histcode promote`` under DVC/CI printed MLflow's "Downloading artifacts: 0%|...|" bars (``\\r`` redraws)
    into the log; off a terminal the CLI's logging setup turns them off, on a terminal (or set by the user)
    they stay."""
    import mlflow

    from histcode import tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(console.MLFLOW_BARS_ENV, raising=False)
    monkeypatch.setenv("HISTCODE_PROGRESS", "bars")
    console.setup_logging()
    assert console.MLFLOW_BARS_ENV not in os.environ
    with tracking.start_run("bars", run_name="r", stage="test") as run:
        tracking.log_dict({"a": 1}, "a.json")
    mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="a.json", dst_path=str(tmp_path / "1"))
    assert "Downloading artifacts" in capsys.readouterr().err  # MLflow's bar, as on a terminal
    monkeypatch.setenv("HISTCODE_PROGRESS", "lines")
    console.setup_logging()
    assert os.environ[console.MLFLOW_BARS_ENV] == "false"
    mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="a.json", dst_path=str(tmp_path / "2"))
    assert "Downloading artifacts" not in capsys.readouterr().err
    monkeypatch.setenv(console.MLFLOW_BARS_ENV, "true")  # the user's choice wins
    console.setup_logging()
    assert os.environ[console.MLFLOW_BARS_ENV] == "true"


def test_summary_says_whether_the_tuned_settings_held_up(reports: Path) -> None:
    """The best trial flatters (best of several on its own folds): the summary gives the held-out check beside it."""
    m = reports / "metrics"
    base = {"objective": "auc", "direction": "maximize", "best_value": 0.9733, "n_complete": 6}
    _write(m / "tune_mil.json", {**base, "heldout_folds": 2, "heldout_tuned": 0.96875, "heldout_current": 1.0,
                                 "heldout_holds": 0})
    (line,) = [ln for ln in summary_lines(reports, reports / "figures", COHORTS) if ln.startswith("tune mil")]
    assert line == ("tune mil: best auc 0.973 on the folds it was chosen on; on 2 held-out fold(s) tuned 0.969 vs "
                    "current 1.000: keep the current settings (reports/tune/mil_best.yaml)")
    _write(m / "tune_mil.json", base)  # a file from before round 25, or every fold searched: no check to give
    (line,) = [ln for ln in summary_lines(reports, reports / "figures", COHORTS) if ln.startswith("tune mil")]
    assert line == "tune mil: best auc 0.973 on the folds it was chosen on (reports/tune/mil_best.yaml)"
    # `histcode tune de` (the registered DE model's study) gets its own line from its own file
    # with the interval of the tuned settings' gain (round 26 on)
    _write(m / "tune_de.json", {"objective": "pearson_r_mean", "direction": "maximize", "best_value": 0.0412,
                                "n_complete": 6, "heldout_folds": 2, "heldout_tuned": 0.041, "heldout_current": 0.021,
                                "heldout_holds": 0, "heldout_gain_ci_low": -0.0123, "heldout_gain_ci_high": 0.0512})
    lines = summary_lines(reports, reports / "figures", COHORTS)
    (line,) = [ln for ln in lines if ln.startswith("tune de")]
    assert line == ("tune de: best pearson_r_mean 0.041 on the folds it was chosen on; on 2 held-out fold(s) tuned "
                    "0.041 vs current 0.021 (gain 95% interval [-0.012, +0.051]): keep the current settings "
                    "(reports/tune/de_best.yaml)")
    assert lines.index(line) == lines.index(next(ln for ln in lines if ln.startswith("tune mil"))) + 1


def test_summary_says_when_ingest_left_out_duplicates(reports: Path) -> None:
    ing = {"slides": 10, "slides_tumour": 5, "slides_normal": 5, "patients": 5, "failures": 3}
    _write(reports / "metrics" / "ingest" / "tcga_brca.json", ing)
    assert not any("duplicates" in ln for ln in summary_lines(reports, reports / "figures", COHORTS))
    _write(reports / "metrics" / "ingest" / "tcga_brca.json", {
        **ing, "failures/slides/duplicate_conflict": 2, "failures/rnaseq/duplicate_file": 1,
        "failures/slides/duplicate_file": 3, "failures/slides/missing_file": 4})
    (line,) = [ln for ln in summary_lines(reports, reports / "figures", COHORTS) if "duplicates" in ln]
    assert line == ("slides tcga_brca: rows left out as duplicates (1 rnaseq duplicate_file, 2 slides "
                    "duplicate_conflict, 3 slides duplicate_file): see failures.csv beside the cohort's slides.csv")
