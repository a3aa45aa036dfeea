"""Defect 1: the project store keeps artifacts in mlruns/artifacts, so a copied/moved project loads its models."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from histcode import tracking
from histcode.mil.model import mil_from_stored
from histcode.registry import CHAMPION, load_model, log_and_register


def _register_champion(linear4, x: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    with tracking.start_run("mil", run_name="fit", stage="train_mil"):
        mv = log_and_register(linear4(3), "histcode-mil", input_example=x)
    mlflow.MlflowClient().set_registered_model_alias("histcode-mil", CHAMPION, mv.version)


def test_artifacts_live_in_store_artifacts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, linear4) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    _register_champion(linear4, np.zeros((2, 4), dtype="float32"))
    con = sqlite3.connect(tmp_path / "mlruns" / "mlflow.db")
    (loc,) = con.execute("SELECT artifact_location FROM experiments WHERE name = 'histcode/mil'").fetchone()
    assert loc.removeprefix("file://") == f"{tmp_path}/mlruns/artifacts", loc
    assert any((tmp_path / "mlruns" / "artifacts").rglob("MLmodel"))


def test_moved_project_loads_champion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, linear4) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    monkeypatch.chdir(old)
    _register_champion(linear4, x)
    shutil.copytree(old / "mlruns", new / "mlruns")
    shutil.rmtree(old)  # the project moved: nothing may still point at the old place
    monkeypatch.chdir(new)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    model = mil_from_stored(load_model("histcode-mil", CHAMPION))
    torch.testing.assert_close(model(torch.from_numpy(x)), linear4(3)(torch.from_numpy(x)))
    # and new runs of the moved project keep writing into its own store
    with tracking.start_run("mil", run_name="after-move", stage="train_mil") as run:
        assert run.info.artifact_uri.removeprefix("file://").startswith(f"{new}/mlruns/artifacts/")


def test_relocate_is_noop_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, linear4) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    _register_champion(linear4, np.zeros((2, 4), dtype="float32"))
    assert tracking.relocate_store(tmp_path / "mlruns" / "mlflow.db") == 0
    assert tracking.relocate_store(tmp_path / "nothing.db") == 0


@pytest.mark.parametrize("uri", ["./mlruns", "mlruns", "/abs/path/mlruns", "file:///abs/mlruns"])
def test_file_store_uri_is_refused_with_one_line(uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """MLflow 3 refuses ./mlruns file stores, but only once a stage has set itself up, with a 100-line traceback.
    The CLI refuses it first, in one line naming the variable and the fix; nothing is written."""
    from histcode.cli import main

    shutil.copy(Path(__file__).resolve().parents[2] / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(tracking.TrackingStoreError, match="unset MLFLOW_TRACKING_URI"):
        tracking.tracking_uri()
    with pytest.raises(SystemExit) as exc:
        main(["heatmaps"], prog="heatmaps")
    assert exc.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"heatmaps: error: MLFLOW_TRACKING_URI={uri}: "), err
    assert "mlflow migrate-filestore" in err[0]
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("uri", ["sqlite:////tmp/x/mlflow.db", "http://127.0.0.1:5000", "postgresql://u@h/db"])
def test_database_and_server_uris_pass(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert tracking.tracking_uri() == uri


def test_file_store_allowed_when_mlflow_is_told_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "./mlruns")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's own opt-out: the user chose the file store
    assert tracking.tracking_uri() == "./mlruns"
