"""The tile and stain_ref stages end to end: outs, DVC metrics JSON, MLflow runs and artifacts."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from histcode.slides.stage import run_stain_ref, run_tile
from histcode.slides.stain import MacenkoNormalizer, load_normalizer

ROOT = Path(__file__).resolve().parents[2]
CMU1 = ROOT / "tests" / "data" / "CMU-1-Small-Region.svs"
DICOM = ROOT / "tests" / "data" / "slidetool_test_dicom.dcm"
HEAVY = ("mlflow", "torch", "great_expectations", "matplotlib", "pandas")  # issue 18: only where used


def test_tile_and_stain_ref_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest_writer) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    junk = tmp_path / "junk.svs"
    junk.write_text("x")
    manifests = tmp_path / "data" / "manifests" / "demo"
    manifests.mkdir(parents=True)
    manifest_writer(manifests / "slides.csv", [("cmu1", CMU1, ""), ("junk", junk, "")])
    params = {
        "base": {"seed": 7, "train_cohort": "demo", "cohorts": {
            "demo": {"kind": "barcode", "source_dir": "src", "slide_dir": "src"}}},
        "tile": {"workers": 0},
        "stain": {"method": "macenko", "fit_tiles": 6},
    }
    metrics = run_tile("demo", params, progress=False)
    assert metrics == json.loads((tmp_path / "reports/metrics/tile/demo.json").read_text())
    assert (metrics["n_slides"], metrics["n_done"], metrics["n_failed"], metrics["n_tiles"]) == (2, 1, 1, 36)
    assert (tmp_path / "data/tiles/demo/cmu1.h5").exists()
    assert (tmp_path / "data/tiles/demo/masks/cmu1.png").exists()

    out = run_stain_ref(params)
    assert out == {"n_fit_tiles": 6}
    norm = load_normalizer(tmp_path / "data/stain/reference.json")
    assert isinstance(norm, MacenkoNormalizer) and norm.fitted
    assert np.isfinite(norm.he_ref.numpy()).all() and (norm.max_c_ref.numpy() > 0).all()
    again = run_stain_ref(params)  # deterministic sample: the same reference
    assert again == out and load_normalizer(tmp_path / "data/stain/reference.json").to_dict() == norm.to_dict()


    from histcode import tracking

    client = tracking.client()  # tile and stain_ref runs are deferred: replayed first
    tile_exp = client.get_experiment_by_name("histcode/tile")
    run = client.search_runs([tile_exp.experiment_id])[0]
    assert run.data.metrics["n_tiles"] == 36 and run.data.tags["cohort"] == "demo"
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "masks")}
    assert arts == {"masks/contact_sheet_p01.jpg"}  # every slide's mask on one page, the failed one first
    failures = {a.path for a in client.list_artifacts(run.info.run_id, "tiles")}
    assert {"tiles/process_list.csv", "tiles/failures.json"} <= failures
    stain_exp = client.get_experiment_by_name("histcode/stain")
    assert client.search_runs([stain_exp.experiment_id])[0].data.metrics["n_fit_tiles"] == 6


def test_a_slide_scanned_coarser_than_the_target_is_tiled_and_flagged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest_writer, caplog: pytest.LogCaptureFixture) -> None:
    """The real DICOM slide is scanned at 2 µm/px (5x): in a 20x cohort its 256 px tiles are enlarged 4x from 64
    px. Found in a dress rehearsal of the paper profile, where it was tiled without a word: now one warning names
    the slide and the factor, and the tile metrics count it; the 0.499 µm/px CMU-1 is not flagged."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    manifests = tmp_path / "data" / "manifests" / "demo"
    manifests.mkdir(parents=True)
    manifest_writer(manifests / "slides.csv", [("cmu1", CMU1, ""), ("dicom", DICOM, "")])
    params = {"base": {"seed": 7, "train_cohort": "demo", "cohorts": {
        "demo": {"kind": "barcode", "source_dir": "src", "slide_dir": "src"}}}, "tile": {"workers": 0}}
    with caplog.at_level(logging.WARNING, logger="histcode.slides.stage"):
        metrics = run_tile("demo", params, progress=False)
    assert (metrics["n_done"], metrics["n_upsampled"]) == (2, 1)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "dicom was scanned at 2.004 µm/px" in warned[0] and "enlarged 4.0x from 64" in warned[0]


def test_complete_cohort_returns_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest_writer) -> None:
    """Issue 18: on complete outputs with the same settings the stage returns the recorded metrics without a new
    MLflow run; a changed setting (another tile digest) does the work again. (The tile run is deferred:
    ``tracking.client()`` replays it before answering.)"""
    from histcode.tracking import client

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    manifests = tmp_path / "data" / "manifests" / "demo"
    manifests.mkdir(parents=True)
    manifest_writer(manifests / "slides.csv", [("cmu1", CMU1, "")])
    params = {
        "base": {"seed": 7, "train_cohort": "demo", "cohorts": {
            "demo": {"kind": "barcode", "source_dir": "src", "slide_dir": "src"}}},
        "tile": {"workers": 0},
    }
    first = run_tile("demo", params, progress=False)
    exp = client().get_experiment_by_name("histcode/tile")
    n_runs = len(client().search_runs([exp.experiment_id]))
    assert run_tile("demo", params, progress=False) == first
    assert len(client().search_runs([exp.experiment_id])) == n_runs  # nothing redone, no new run
    # the stage's own face (pipelines/tile.py = histcode tile) on the complete cohort: no heavy import, no run
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = ("import sys\nfrom histcode.cli import run_stage\ntry:\n    run_stage('tile', ['--cohort', 'demo'])\n"
            "except SystemExit as done:\n    print(done.code, sorted(m for m in HEAVY if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code.replace("HEAVY", repr(HEAVY))], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
    assert out.stdout.split("\n")[-2] == "0 []", out.stdout + out.stderr
    assert len(client().search_runs([exp.experiment_id])) == n_runs
    params["tile"]["tissue_threshold"] = 0.25  # the same face doing the work (run deferred): still none of them
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = subprocess.run([sys.executable, "-c", code.replace("HEAVY", repr(HEAVY))], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
    assert out.stdout.split("\n")[-2] == "0 []", out.stdout + out.stderr
    assert len(client().search_runs([exp.experiment_id])) == n_runs + 1
