"""The pretrain stage end to end on two tiny TIFF slides: files, MLflow run, registry round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from histcode.ssl.backbone import load_encoder
from histcode.ssl.stage import run_pretrain

PARAMS = {
    "base": {"seed": 7, "train_cohort": "tiny",
             "cohorts": {"tiny": {"kind": "barcode", "source_dir": "slides", "slide_dir": "slides"}}},
    "pretrain": {"method": "adco", "backbone": "resnet18_trunc", "input_px": 32, "read_px": 48, "epochs": 2,
                 "batch_size": 16, "tiles_per_slide": 0.5, "max_tiles_per_slide": 32, "bank_size": 32,
                 "proj_hidden": 32, "proj_dim": 16, "workers": 1, "threads": 1, "stain": False,
                 "progress": False, "log_every": 1},
}


def test_pretrain_stage_writes_encoder_metrics_and_registers(tiff_project: Path) -> None:
    import mlflow

    result = run_pretrain(PARAMS)
    # 2 slides × 64 tiles × 0.5 = 64 tiles per epoch → 4 steps of 16, 2 epochs
    assert result.metrics["steps"] == 8 and result.metrics["read_errors"] == 0
    local = load_encoder(tiff_project / "data" / "models" / "encoder")
    registered = load_encoder("models:/histcode-encoder@challenger")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(registered(x), local(x))
    meta = json.loads((tiff_project / "data" / "models" / "encoder" / "encoder.json").read_text())
    assert meta["method"] == "adco" and meta["backbone"] == "resnet18_trunc" and meta["dim"] == 256
    loss = pd.read_csv(tiff_project / "reports" / "plots" / "pretrain_loss.csv")
    assert list(loss.columns) == ["step", "loss"] and loss["step"].tolist() == list(range(1, 9))
    metrics = json.loads((tiff_project / "reports" / "metrics" / "pretrain.json").read_text())
    assert metrics["final_loss"] == loss["loss"].iloc[-1]
    run = mlflow.get_run(meta["run_id"])
    assert run.data.params["method"] == "adco" and "train/loss" in run.data.metrics
    assert run.data.tags["histcode.stage"] == "pretrain"
    assert len(mlflow.MlflowClient().get_metric_history(run.info.run_id, "train/loss")) == 8


def test_rerun_of_a_finished_run_changes_nothing(tiff_project: Path) -> None:
    """A DVC rerun (resume="auto") of a finished pretraining: no new MLflow run and the same output bytes, with
    the outputs left in place or deleted first (as DVC does); a new run id in encoder.json would make DVC rerun
    every later stage. A checkpoint that does not name the run that trained it is resumed under a new run."""
    import shutil

    import mlflow

    from histcode.atomic import save_torch
    from histcode.ssl.checkpoint import load_checkpoint

    first = run_pretrain(PARAMS)
    enc = tiff_project / "data" / "models" / "encoder"
    outs = [enc / "encoder.pt", enc / "encoder.json", tiff_project / "reports" / "metrics" / "pretrain.json",
            tiff_project / "reports" / "plots" / "pretrain_loss.csv"]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in outs}
    n_runs = len(mlflow.search_runs(search_all_experiments=True))
    again = run_pretrain(PARAMS, resume="auto")
    assert again.metrics == first.metrics and again.model_version == first.model_version
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in outs} == before  # untouched
    shutil.rmtree(enc)
    for p in outs[2:]:
        p.unlink()
    run_pretrain(PARAMS, resume="auto")
    assert {p: p.read_bytes() for p in outs} == {p: b for p, (b, _) in before.items()}  # rebuilt, same bytes
    assert len(mlflow.search_runs(search_all_experiments=True)) == n_runs
    ckpt = tiff_project / "data" / "checkpoints" / "pretrain" / "adco.pt"
    state = load_checkpoint(ckpt)
    save_torch(ckpt, {k: v for k, v in state.items() if k != "final"})  # as written before this round
    resumed = run_pretrain(PARAMS, resume="auto")
    assert len(mlflow.search_runs(search_all_experiments=True)) == n_runs + 1
    assert resumed.metrics["resumed_at_epoch"] == 2 and (enc / "encoder.pt").read_bytes() == before[outs[0]][0]


def test_a_cohort_too_small_for_one_batch_fails_before_any_run(tiff_project: Path) -> None:
    """The paper profile's batch of 256 on a pilot (here 64 sampled tiles): one ConfigError naming a batch size that
    fits, raised before a model is built or an MLflow run is opened (a failed run in the UI for a params mistake is
    noise), and nothing is written."""
    import mlflow
    import pytest

    from histcode.config import ConfigError

    before = {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    params = {**PARAMS, "pretrain": {**PARAMS["pretrain"], "batch_size": 256}}
    with pytest.raises(ConfigError, match=r"pretrain samples 64 tiles per epoch.*batch_size to at most 64"):
        run_pretrain(params)
    after = {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    assert after == before
    assert not list((tiff_project / "data" / "models").rglob("*.*"))  # no encoder file, no checkpoint
