"""A stage's MLflow run and what it logs: tags, params, datasets, metrics (written twice: MLflow and the
stage's JSON for DVC), artifacts. A light stage's run can be deferred to the spool (no mlflow import)."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from histcode import tables
from histcode.atomic import write_json
from histcode.tracking import spool as run_spool
from histcode.tracking.lineage import dvc_hash, run_tags
from histcode.tracking.replay import dataset_name, launch_replayer, log_input, replay_spool
from histcode.tracking.store import setup, spool_root, tracking_uri

log = logging.getLogger(__name__)

RUN_CONFIG = "run_config.json"  # every run's nested start-up config (tracking.run_config)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested params for ``mlflow.log_params`` (keys joined by dots, lists as JSON)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list | tuple):
            out[key] = json.dumps(list(v), default=str)[:500]
        else:
            out[key] = v
    return out


@contextlib.contextmanager
def start_run(
    experiment: str,
    *,
    run_name: str,
    stage: str,
    params: Mapping[str, Any] | None = None,
    cohort: str | None = None,
    inputs: list[str | Path] | None = None,
    nested: bool = False,
    tags: Mapping[str, str] | None = None,
    defer: bool = False,
) -> Iterator[Any]:
    """Start an MLflow run with the project's tags and params logged; nested runs inherit the experiment.

    ``defer``: record the run to the spool and replay it in a detached process when the block ends (light
    stages: no mlflow import on their path; ``histcode.tracking.spool``). Only with the project's local store, and
    never when ``HISTCODE_MLFLOW_SYNC=1``; the run then has no id inside the block.
    """
    all_tags = run_tags(stage=stage, cohort=cohort, inputs=inputs)
    all_tags.update(tags or {})
    config = run_config(stage, run_name, cohort, params, inputs)
    uri = tracking_uri()
    root = spool_root(uri)
    if defer and not nested and root is not None and run_spool.deferral_allowed():
        with _deferred_run(root, uri, experiment, run_name, all_tags, params, inputs) as run:
            log_dict(config, RUN_CONFIG)
            yield run
        return
    import mlflow

    if root is not None and not nested:
        replay_spool(root)  # earlier deferred runs first: nothing lost, order kept
    if not nested:
        setup(experiment, uri)
    with mlflow.start_run(run_name=run_name, nested=nested, tags=all_tags) as run:
        if params:
            mlflow.log_params(flatten(params))
        for path in inputs or []:
            log_dataset(path)
        log_dict(config, RUN_CONFIG)
        yield run


def run_config(stage: str, run_name: str, cohort: str | None, params: Mapping[str, Any] | None,
               inputs: list[str | Path] | None) -> dict[str, Any]:
    """What a run was started with, nested as in ``params.yaml`` (MLflow's params are flat strings, cut at 6000
    characters). Every run carries it: MLflow 3.17's compare view breaks its Artifacts section ("Something went
    wrong") when one of the compared runs has no artifact at all."""
    return {"stage": stage, "run_name": run_name, "cohort": cohort,
            "params": json.loads(json.dumps(dict(params or {}), default=str)),
            "inputs": [str(p) for p in inputs or []]}


_SPOOL: run_spool.SpoolRecorder | None = None  # the deferred run being recorded in this process, if any


class DeferredRun:
    """Stands in for MLflow's ``ActiveRun`` inside a deferred run: MLflow gives the id only at replay."""

    def __init__(self, record: run_spool.SpoolRecorder) -> None:
        self.record = record

    @property
    def info(self) -> Any:
        raise RuntimeError("a deferred MLflow run has no run id until it is replayed; open it with defer=False "
                           "where the id is needed")


@contextlib.contextmanager
def _deferred_run(root: Path, uri: str, experiment: str, run_name: str, tags: dict[str, str],
                  params: Mapping[str, Any] | None, inputs: list[str | Path] | None) -> Iterator[DeferredRun]:
    global _SPOOL
    context = _mlflow_context_tags(tags.get("git_commit", ""))
    rec = run_spool.SpoolRecorder(root, experiment, run_name, uri, {**context, **tags}, flatten(params or {}))
    for p in inputs or []:
        if Path(p).exists():
            rec.inputs.append({"path": str(Path(p).resolve()), "name": dataset_name(p),
                               "digest": dvc_hash([p])[:16]})
    _SPOOL, status = rec, "FAILED"
    try:
        yield DeferredRun(rec)
        status = "FINISHED"
    finally:
        _SPOOL = None
        rec.finish(status)
        launch_replayer(root)


def _mlflow_context_tags(commit: str) -> dict[str, str]:
    """The tags MLflow's own run context would set (user, source file, git commit and branch), so a replayed
    run reads in the UI as a synchronous one does ("Created by", "Source ... branch · commit")."""
    import getpass

    tags = {"mlflow.source.name": sys.argv[0] if sys.argv else "", "mlflow.source.type": "LOCAL"}
    with contextlib.suppress(Exception):
        tags["mlflow.user"] = getpass.getuser()
    sha = commit.removesuffix("-dirty")
    if sha and sha != "unknown":
        tags["mlflow.source.git.commit"] = sha
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True,
                                    check=True).stdout.strip()
            if branch and branch != "HEAD":
                tags["mlflow.source.git.branch"] = branch
    return tags


def spooled(what: str) -> run_spool.SpoolRecorder | None:
    """The deferred run being recorded, if any (``what`` names the call, for calls a spool cannot take)."""
    if _SPOOL is not None and what:
        raise RuntimeError(f"tracking.{what} is not available in a deferred MLflow run; open it with defer=False")
    return _SPOOL


def log_dataset(path: str | Path, context: str = "input") -> None:
    """Record ``path`` (a manifest, a tile or feature set) as an MLflow dataset input of the active run: its
    name, location and a content digest (``dvc_hash``), so the UI's Datasets column shows what a run read."""
    p = Path(path)
    if not p.exists():
        return
    log_input(str(p.resolve()), dataset_name(p), dvc_hash([p])[:16], context)


def log_metrics(metrics: Mapping[str, float], json_path: str | Path | None = None, step: int | None = None) -> None:
    """Log metrics to the active MLflow run and (when given) to the stage's metrics JSON: one dict, twice; its
    paper-table keys also go to ``reports/tables/`` (the declared DVC metrics, see ``histcode.tables``)."""
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and v == v}
    spool = spooled("log_metrics(step=...)" if step is not None else "")
    if spool is not None:
        spool.metrics.update(numeric)
    elif numeric:
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.log_metrics(numeric, step=step)
    if json_path is not None:
        write_metrics(metrics, json_path)


def write_metrics(metrics: Mapping[str, Any], json_path: str | Path) -> None:
    """The DVC half of ``log_metrics``: the stage's metrics JSON and its paper-table keys, no MLflow (a stage
    that found nothing to do still owes DVC its declared metrics files)."""
    write_json(json_path, dict(metrics))
    declared = tables.table_path(json_path)
    if declared is not None:  # the few keys `dvc metrics show` lists (paper table); all keys stay in json_path
        write_json(declared[1], tables.table(declared[0], metrics))
    spec = tables.metrics_file_of(json_path)
    if spec is not None and spec.missing(metrics):  # what `histcode summary` reads (histcode.tables)
        log.warning("%s: no key for %s (declared in histcode.tables.METRICS_FILES)", json_path,
                    spec.missing(metrics))


def active_run() -> Any:
    """The active MLflow run, or None."""
    spooled("active_run")
    import mlflow

    return mlflow.active_run()


def log_text(text: str, artifact_file: str) -> None:
    """Log ``text`` as the artifact ``artifact_file`` of the active run."""
    spool = spooled("")
    if spool is not None:
        spool.add_bytes(text.encode(), artifact_file)
        return
    import mlflow

    mlflow.log_text(text, artifact_file)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Log one local file as an artifact of the active run (under ``artifact_path``)."""
    spool = spooled("")
    if spool is not None:
        spool.add_file(path, artifact_path)
        return
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_artifacts(directory: str | Path, artifact_path: str | None = None) -> None:
    """Attach a directory's files to the active run (under ``artifact_path``)."""
    spool = spooled("")
    if spool is not None:
        for f in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
            sub = str(f.parent.relative_to(directory))
            parts = [x for x in (artifact_path, None if sub == "." else sub) if x]
            spool.add_file(f, "/".join(parts) or None)
        return
    import mlflow

    mlflow.log_artifacts(str(directory), artifact_path=artifact_path)


def log_dict(data: Mapping[str, Any], name: str) -> None:
    """Attach ``data`` as a JSON/YAML artifact file ``name`` to the active run."""
    spool = spooled("")
    if spool is not None:
        if name.endswith((".yaml", ".yml")):
            import yaml

            spool.add_bytes(yaml.safe_dump(dict(data)).encode(), name)
        else:
            spool.add_bytes(json.dumps(dict(data), indent=2).encode(), name)
        return
    import mlflow

    mlflow.log_dict(dict(data), name)


def log_image(image: Any, name: str) -> None:
    """Attach an image array (H, W, 3 uint8) as the PNG artifact ``name`` to the active run."""
    spool = spooled("")
    if spool is not None:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        spool.add_bytes(buf.getvalue(), name)
        return
    import mlflow

    mlflow.log_image(image, name)


def log_params(params: Mapping[str, Any]) -> None:
    """Add params to the active run."""
    spool = spooled("")
    if spool is not None:
        spool.params.update({str(k): v for k, v in params.items()})
        return
    import mlflow

    mlflow.log_params(dict(params))


def set_tags(tags: Mapping[str, str]) -> None:
    """Set tags on the active run."""
    spool = spooled("")
    if spool is not None:
        spool.tags.update({str(k): str(v) for k, v in tags.items()})
        return
    import mlflow

    mlflow.set_tags(dict(tags))


def set_description(text: str) -> None:
    """The active run's description (MLflow's ``mlflow.note.content`` tag), shown in full at the top of the run page
    where a tag value is cut after a few words."""
    set_tags({"mlflow.note.content": text})


def log_step(metrics: Mapping[str, float], step: int) -> None:
    """One step of a training curve on the active run: every value as given (NaN included), no JSON file."""
    spooled("log_step")
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)
