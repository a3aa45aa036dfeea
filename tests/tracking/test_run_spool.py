"""Deferred MLflow runs (histcode.tracking.spool + tracking.replay_spool): a light stage records its run without
importing mlflow; the replay gives the same run a synchronous stage would have logged, once, in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from histcode import tracking
from histcode.tracking import replay
from histcode.tracking import spool as run_spool

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.delenv(run_spool.SYNC_ENV, raising=False)
    return tmp_path


def _runs(experiment: str) -> list:
    c = tracking.client()  # replays what is pending first
    exp = c.get_experiment_by_name(f"histcode/{experiment}")
    return [] if exp is None else c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def test_a_deferred_run_imports_no_mlflow_and_replays_in_full(store: Path) -> None:
    (store / "inputs.csv").write_text("a,b\n1,2\n")
    (store / "mask.png").write_bytes(b"\x89PNG fake")
    script = """
import json, sys
import numpy as np
from histcode import tracking
with tracking.start_run("tile", run_name="tile-demo", stage="tile", cohort="demo", params={"tile": {"px": 256}},
                        inputs=["inputs.csv"], defer=True) as run:
    tracking.log_artifact("mask.png", artifact_path="masks")
    tracking.log_dict({"s1": "unreadable"}, "tiles/failures.json")
    tracking.log_image(np.zeros((4, 5, 3), np.uint8), "stain/preview.png")
    tracking.set_tags({"extra": "yes"})
    tracking.log_metrics({"n_tiles": 32, "name": "x"}, "reports/metrics/tile/demo.json")
print(json.dumps(sorted(m for m in ("mlflow", "torch") if m in sys.modules)))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=store,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []  # the stage paid no mlflow (nor torch) import
    assert json.loads((store / "reports/metrics/tile/demo.json").read_text())["n_tiles"] == 32  # DVC side: at once
    (run,) = _runs("tile")
    assert run.info.run_name == "tile-demo" and run.info.status == "FINISHED"
    assert 0 < run.info.start_time <= run.info.end_time
    assert run.data.params["tile.px"] == "256" and run.data.metrics == {"n_tiles": 32.0}
    tags = run.data.tags
    assert tags["histcode.stage"] == "tile" and tags["cohort"] == "demo" and tags["extra"] == "yes"
    assert tags["dvc_data_hash"] and tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.user"]
    c = tracking.client()
    arts = {a.path for d in ("masks", "tiles", "stain") for a in c.list_artifacts(run.info.run_id, d)}
    assert arts == {"masks/mask.png", "tiles/failures.json", "stain/preview.png"}
    assert tracking.RUN_CONFIG in {a.path for a in c.list_artifacts(run.info.run_id)}  # as a synchronous run
    got = Path(tracking.download_artifacts(run_id=run.info.run_id, artifact_path="tiles/failures.json",
                                           dst_path=str(store / "dl")))
    assert json.loads(got.read_text()) == {"s1": "unreadable"}
    (ds,) = run.inputs.dataset_inputs
    assert ds.dataset.name.endswith("inputs.csv") and ds.dataset.digest == tracking.dvc_hash(["inputs.csv"])[:16]
    assert run_spool.pending(store / tracking.SPOOL_DIR) == []


def test_a_failing_deferred_run_is_replayed_as_failed(store: Path) -> None:
    with pytest.raises(ValueError, match="bad slide"), \
            tracking.start_run("tile", run_name="tile-x", stage="tile", defer=True) as run:
        with pytest.raises(RuntimeError, match="no run id until it is replayed"):
            _ = run.info
        with pytest.raises(RuntimeError, match="not available in a deferred MLflow run"):
            tracking.log_step({"loss": 1.0}, step=1)
        raise ValueError("bad slide")
    (failed,) = _runs("tile")
    assert failed.info.status == "FAILED"


def test_synchronous_runs_replay_earlier_deferred_runs_first(store: Path) -> None:
    root = store / tracking.SPOOL_DIR
    for name in ("first", "second"):  # recorded by hand: no detached replayer races this test
        rec = run_spool.SpoolRecorder(root, "tile", name, tracking.tracking_uri(), {"histcode.stage": "tile"}, {})
        rec.finish("FINISHED")
        time.sleep(0.01)  # distinct start times
    assert len(run_spool.pending(root)) == 2
    with tracking.start_run("train_mil", run_name="mil", stage="train_mil") as run:
        assert run.info.run_id  # a synchronous run has its id at once
    assert [r.info.run_name for r in _runs("tile")] == ["first", "second"]
    assert run_spool.pending(root) == []


def test_a_replay_that_died_half_way_is_not_duplicated(store: Path) -> None:
    root = store / tracking.SPOOL_DIR
    rec = run_spool.SpoolRecorder(root, "tile", "once", tracking.tracking_uri(), {}, {"k": 1})
    done = rec.finish("FINISHED")
    c = tracking.client()  # nothing pending yet? the record is complete: client() replays it ...
    assert [r.info.run_name for r in _runs("tile")] == ["once"]
    # ... now simulate a replayer killed after create_run: the record and its marker are back
    rec2 = run_spool.SpoolRecorder(root, "tile", "twice", tracking.tracking_uri(), {}, {})
    done = rec2.finish("FINISHED")
    exp_id = c.get_experiment_by_name("histcode/tile").experiment_id
    orphan = c.create_run(exp_id, run_name="twice")
    (done / "replaying.txt").write_text(orphan.info.run_id)
    names = sorted(r.info.run_name for r in _runs("tile"))
    assert names == ["once", "twice"]  # the orphan was removed, the record replayed once


def test_sync_env_and_servers_never_defer(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(run_spool.SYNC_ENV, "1")
    with tracking.start_run("tile", run_name="t", stage="tile", defer=True) as run:
        assert run.info.run_id
        tracking.log_image(np.zeros((2, 2, 3), np.uint8), "x/p.png")
    assert run_spool.pending(store / tracking.SPOOL_DIR) == []
    assert tracking.spool_root("http://mlflow.example:5000") is None  # a team server: logged synchronously


def test_a_replayer_that_cannot_start_leaves_the_run_in_the_spool(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise OSError("no such interpreter")

    with monkeypatch.context() as m:
        m.setattr(replay.subprocess, "Popen", no_process)
        with tracking.start_run("tile", run_name="kept", stage="tile", defer=True):
            tracking.log_metrics({"n_tiles": 3})
    assert len(run_spool.pending(store / tracking.SPOOL_DIR)) == 1  # the stage did not fail; the run waits
    (run,) = _runs("tile")  # the next client replays it
    assert run.info.run_name == "kept" and run.data.metrics == {"n_tiles": 3.0}
