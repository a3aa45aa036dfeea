"""Deferred runs become real MLflow runs: a detached process (or the next synchronous run) replays the spool
(``histcode.tracking.spool``) with each run's recorded times and status."""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from histcode.tracking import spool as run_spool
from histcode.tracking.store import project_root, setup, spool_root

log = logging.getLogger(__name__)


def launch_replayer(root: Path) -> None:
    """A detached process replays the spool; if it dies, the next synchronous run or client replays instead."""
    code = ("import sys, pathlib; from histcode.process_exit import skip_exit_collection; skip_exit_collection(); "
            "from histcode.tracking import replay_spool; replay_spool(pathlib.Path(sys.argv[1]))")
    try:
        with open(root / "replay.log", "ab") as err:
            subprocess.Popen([sys.executable, "-c", code, str(root)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, cwd=project_root())
    except OSError as exc:  # the stage's work is done: its run waits in the spool for the next replay
        log.warning("could not start the MLflow replay process (%s); the run stays in %s until the next stage, "
                    "`histcode server flush` or `make ui` logs it", exc, root)


def replay_spool(root: Path | None = None) -> int:
    """Replay every complete deferred run under ``root`` (default: the project store's spool) as a real MLflow
    run with its recorded times and status, oldest first; returns how many. A run that fails to replay stays
    for the next call (with a warning)."""
    root = root if root is not None else spool_root()
    if root is None or not run_spool.pending(root):  # the common case costs a directory listing
        return 0
    done = 0
    with run_spool.locked(root):
        for run_dir in run_spool.pending(root):
            try:
                _replay_one(run_dir)
            except Exception as exc:
                log.warning("could not replay the deferred MLflow run %s (%s: %s); it stays for the next replay",
                            run_dir, type(exc).__name__, exc)
                continue
            (run_dir / run_spool.RECORD).unlink()  # first: a half-deleted folder is never replayed twice
            shutil.rmtree(run_dir, ignore_errors=True)
            done += 1
    return done


def _replay_one(run_dir: Path) -> None:
    import mlflow
    from mlflow.entities import Metric, Param

    rec = run_spool.read_record(run_dir)
    exp_id = setup(rec["experiment"], rec["tracking_uri"])  # the store the run was recorded for
    mlflow_client = mlflow.MlflowClient()
    started = run_dir / "replaying.txt"  # a replay that died half-way: drop its run, then start over
    if started.exists():
        with contextlib.suppress(Exception):
            mlflow_client.delete_run(started.read_text().strip())
    run = mlflow_client.create_run(exp_id, start_time=rec["start_ms"], tags=rec["tags"], run_name=rec["run_name"])
    run_id = run.info.run_id
    started.write_text(run_id)
    params = [Param(k, v) for k, v in rec["params"].items()]
    for i in range(0, len(params), 100):
        mlflow_client.log_batch(run_id, params=params[i : i + 100])
    metrics = [Metric(k, float(v), rec["end_ms"], 0) for k, v in rec["metrics"].items()]
    for i in range(0, len(metrics), 1000):
        mlflow_client.log_batch(run_id, metrics=metrics[i : i + 1000])
    if rec["inputs"]:
        with mlflow.start_run(run_id=run_id):
            for item in rec["inputs"]:
                log_input(item["path"], item["name"], item["digest"], "input")
    for art in rec["artifacts"]:
        mlflow_client.log_artifact(run_id, str(run_dir / art["file"]), artifact_path=art["artifact_path"])
    mlflow_client.set_terminated(run_id, status=rec["status"], end_time=rec["end_ms"])


def dataset_name(path: str | Path) -> str:
    return "/".join(Path(path).resolve().parts[-2:])  # e.g. tcga_synth/adco, tcga_synth/slides.csv


def log_input(path: str, name: str, digest: str, context: str) -> None:
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    try:
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are the local-file source
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(path)
        mlflow.log_input(MetaDataset(source, name=name, digest=digest), context=context)
    except Exception as exc:  # lineage display only: never fail a stage over it
        log.warning("could not log dataset %s to MLflow: %s", path, exc)
