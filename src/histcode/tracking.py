"""MLflow conventions (DESIGN §5): tracking URI, experiment names, run tags, metrics written twice.

``MLFLOW_TRACKING_URI`` wins when set (a team server); otherwise a sqlite store under ``mlruns/`` with
artifacts in ``mlruns/artifacts`` (the file store is deprecated in MLflow 3).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from histcode import __version__, run_spool, tables
from histcode.atomic import write_json
from histcode.errors import HistcodeError

MLRUNS_DIR = Path("mlruns")
EXPERIMENT_PREFIX = "histcode"
ARTIFACTS_DIR = "artifacts"  # next to the sqlite db: <store>/artifacts/<experiment id>/...
EXP_NAME_TAG = "dvc.exp_name"
SPOOL_DIR = "spool"  # deferred runs waiting for replay, beside the sqlite db (histcode.run_spool)
RUN_CONFIG = "run_config.json"  # every run's nested start-up config (tracking.run_config)

log = logging.getLogger(__name__)

# Columns of an MLflow sqlite store that hold artifact paths (MLflow stores them absolute; see relocate_store).
_PATH_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def project_root() -> Path:
    """The DVC project root: ``DVC_ROOT`` inside DVC stages (the parent repo in ``dvc exp run --temp`` and queued
    experiments, whose stages run in a copy under ``.dvc/tmp/exps``), else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def experiment_copy() -> str | None:
    """The DVC experiment's name when this process runs in a ``dvc exp run --temp``/``--queue`` copy (a folder
    under ``.dvc/tmp/exps`` while ``DVC_ROOT`` names the project), else None: ``dvc repro`` and a workspace
    ``dvc exp run`` make the outputs the project itself holds."""
    name = os.environ.get("DVC_EXP_NAME")
    return name if name and Path.cwd().resolve() != project_root() else None


# MLflow 3's UI opens an experiment in model-training mode (runs table, compare view) with this tag
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def tracking_uri(root: Path | None = None) -> str:
    """The tracking URI to use; creates the project's sqlite store (absolute path) if needed.

    Experiments run by DVC in a temp copy still log to the project's store, so their runs and models survive.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        check_store_uri(env)
        return env
    store = (root or project_root()) / MLRUNS_DIR
    store.mkdir(parents=True, exist_ok=True)
    db = (store / "mlflow.db").resolve()
    relocate_store(db)
    return f"sqlite:///{db}"


class TrackingStoreError(HistcodeError, ValueError):
    """``MLFLOW_TRACKING_URI`` names a store this MLflow will not open."""


def check_store_uri(uri: str) -> None:
    """Refuse a file-store URI up front (``histcode.cli`` calls this before any command's work): MLflow 3 raises
    on ``./mlruns``-style stores only when a stage opens its run (pretraining: after loading the cohort), with a
    100-line traceback."""
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme
    if scheme not in ("", "file") or os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("true", "1"):
        return
    raise TrackingStoreError(
        f"MLFLOW_TRACKING_URI={uri}: MLflow 3 no longer opens file stores (./mlruns folders); unset "
        f"MLFLOW_TRACKING_URI to use the project's store ({MLRUNS_DIR}/mlflow.db), point it at a database or "
        f"server (sqlite:///path/mlflow.db, http://host:5000), or move an old store with `mlflow migrate-filestore`.")


def local_store(uri: str) -> Path | None:
    """The directory of a local sqlite store URI (``sqlite:////abs/dir/mlflow.db`` → ``/abs/dir``), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).resolve().parent


def artifact_location(root: Path | None = None, uri: str | None = None) -> str | None:
    """Artifact root for new experiments: ``<store>/artifacts`` beside a local sqlite store (the project's
    ``mlruns/artifacts``); None lets a tracking server decide (it proxies artifacts)."""
    store = local_store(uri or tracking_uri(root))
    return (store / ARTIFACTS_DIR).as_uri() if store is not None else None


def relocate_store(db: Path) -> int:
    """Point a copied or moved sqlite store at its own ``artifacts`` directory; returns rows rewritten.

    MLflow records artifact locations as absolute paths, so a project copied elsewhere would still read (or fail
    to read) the old place. Artifacts live under ``<store>/artifacts``, hence every path recorded under a
    different ``…/artifacts`` prefix is rewritten to this store's prefix. Cheap when nothing moved.
    """
    if not db.exists():
        return 0
    new_uri = (db.parent / ARTIFACTS_DIR).as_uri()
    new_path = str(db.parent / ARTIFACTS_DIR)
    try:
        with contextlib.closing(sqlite3.connect(db)) as con:
            rows = con.execute("SELECT experiment_id, artifact_location FROM experiments").fetchall()
            olds = set()
            for exp_id, loc in rows:
                loc = (loc or "").removesuffix(f"/{exp_id}")  # MLflow's default is <root>/<id>; ours <root>
                if loc.endswith(f"/{ARTIFACTS_DIR}"):
                    olds.add(loc)
            olds -= {new_uri, new_path}
            changed = 0
            for old in sorted(olds):
                new = new_uri if old.startswith("file:") else new_path
                for table, col in _PATH_COLUMNS:
                    cur = con.execute(
                        f"UPDATE {table} SET {col} = ? || substr({col}, ?) WHERE {col} = ? OR substr({col}, 1, ?) = ?",
                        (new, len(old) + 1, old, len(old) + 1, old + "/"),
                    )
                    changed += cur.rowcount
            con.commit()
    except sqlite3.OperationalError:  # not (yet) an MLflow store: nothing recorded to move
        return 0
    if changed:
        log.info("MLflow store %s was moved: %d artifact paths now point under %s", db.parent, changed, new_path)
    return changed


def setup(experiment: str, uri: str | None = None) -> str:
    """Point MLflow at ``uri`` (default: the project store) and select experiment ``histcode/<experiment>``;
    return its id."""
    import mlflow

    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)  # note: MLflow 3 also exports MLFLOW_TRACKING_URI here
    name = f"{EXPERIMENT_PREFIX}/{experiment}"
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        exp_id = mlflow.create_experiment(
            name, artifact_location=artifact_location(uri=uri), tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    else:
        exp_id = exp.experiment_id
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # stores made before the tag existed
            mlflow.MlflowClient().set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_commit() -> str:
    """Current git commit (suffixed ``-dirty`` when the tree has changes), or ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout
        return sha.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dvc_hash(paths: list[str | Path]) -> str:
    """A content hash of the given inputs, as DVC records it in ``dvc.lock``/``.dvc`` files when present.

    Falls back to hashing file sizes+mtimes+names for paths DVC does not track (fast, stable per content
    snapshot). Used to tie runs and registered models to the exact data they saw.
    """
    h = hashlib.md5()
    lock = _dvc_lock_hashes()
    for p in sorted(str(x) for x in paths):
        key = p.rstrip("/")
        if key in lock:
            h.update(f"{key}:{lock[key]}".encode())
            continue
        inside = _inside_tracked_dir(key, lock)
        if inside is not None:  # e.g. data/features/<cohort>/<encoder> of the tracked data/features/<cohort>
            h.update(f"{key}:{inside}".encode())
            continue
        path = Path(p)
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for f in files:
            if f.is_file():
                st = f.stat()
                h.update(f"{f}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()


def _inside_tracked_dir(key: str, lock: Mapping[str, str]) -> str | None:
    """Content hash of ``key``, a path inside a DVC-tracked directory, from that directory's manifest in the DVC
    cache (relative path → md5 of each file); None when no tracked directory holds it or its manifest is not
    cached. Before, such paths fell back to file mtimes, so the same data hashed differently in every clone."""
    for top, md5 in lock.items():
        if not (md5.endswith(".dir") and key.startswith(top + "/")):
            continue
        manifest = _dvc_cache_dir() / "files" / "md5" / md5[:2] / md5[2:]
        try:
            entries = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return None
        rel = key[len(top) + 1:]
        picked = sorted(f"{e['relpath']}:{e['md5']}" for e in entries
                        if str(e.get("relpath", "")) == rel or str(e.get("relpath", "")).startswith(rel + "/"))
        return hashlib.md5("\n".join(picked).encode()).hexdigest() if picked else None
    return None


def _dvc_cache_dir() -> Path:
    """The DVC cache: ``cache.dir`` of ``.dvc/config.local`` or ``.dvc/config`` (a team's shared cache, set by
    ``dvc cache dir``; relative to ``.dvc/``), else ``.dvc/cache``."""
    import configparser

    for name in ("config.local", "config"):
        parser = configparser.ConfigParser()
        try:
            parser.read(Path(".dvc") / name)
        except configparser.Error:
            continue
        if parser.has_option("cache", "dir"):
            return Path(".dvc") / os.path.expanduser(parser.get("cache", "dir").strip().strip("'\""))
    return Path(".dvc/cache")


def _dvc_lock_hashes() -> dict[str, str]:
    out: dict[str, str] = {}
    lock = Path("dvc.lock")
    if lock.exists():
        from histcode.config import yaml_load

        data = yaml_load(lock.read_text()) or {}
        stages = list((data.get("stages") or {}).values())
        # a path's producing stage (its outs) wins over the stages that read it (their deps): during `dvc repro`
        # DVC rewrites a stage's entry when it finishes, so a consumer still running holds the previous hash
        for kind in ("deps", "outs"):
            for stage in stages:
                for entry in stage.get(kind) or []:
                    if "md5" in entry:
                        out[str(entry["path"]).rstrip("/")] = entry["md5"]
    for dvcfile in [*Path(".").glob("*.dvc"), *Path("data").glob("*.dvc")]:  # e.g. data/raw.dvc (real cohorts)
        if not dvcfile.is_file():  # the .dvc/ config directory also matches the pattern
            continue
        from histcode.config import yaml_load

        data = yaml_load(dvcfile.read_text()) or {}
        for entry in data.get("outs") or []:
            if "md5" in entry:  # paths in a .dvc file are relative to its folder
                out[str(dvcfile.parent / str(entry["path"])).rstrip("/")] = entry["md5"]
    return out


def run_tags(*, stage: str, cohort: str | None = None, inputs: list[str | Path] | None = None) -> dict[str, str]:
    """Tags every run carries: stage, git commit, DVC data hash of its inputs, cohort, package version and, in
    a ``dvc exp run``, the experiment's name and baseline commit."""
    tags = {
        "histcode.stage": stage,
        "git_commit": git_commit(),
        "histcode.version": __version__,
    }
    if cohort:
        tags["cohort"] = cohort
    if os.environ.get("DVC_EXP_NAME"):  # set by `dvc exp run` (also --temp/--queue): find an experiment's runs
        tags[EXP_NAME_TAG] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc.exp_baseline_rev"] = os.environ["DVC_EXP_BASELINE_REV"]
    if inputs:
        tags["dvc_data_hash"] = dvc_hash(inputs)
    return tags


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
    stages: no mlflow import on their path; ``histcode.run_spool``). Only with the project's local store, and
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


def spool_root(uri: str | None = None) -> Path | None:
    """Where deferred runs of a local sqlite store wait (``<store>/spool``); None for a tracking server."""
    store = local_store(uri or tracking_uri())
    return store / SPOOL_DIR if store is not None else None


@contextlib.contextmanager
def _deferred_run(root: Path, uri: str, experiment: str, run_name: str, tags: dict[str, str],
                  params: Mapping[str, Any] | None, inputs: list[str | Path] | None) -> Iterator[DeferredRun]:
    global _SPOOL
    context = _mlflow_context_tags(tags.get("git_commit", ""))
    rec = run_spool.SpoolRecorder(root, experiment, run_name, uri, {**context, **tags}, flatten(params or {}))
    for p in inputs or []:
        if Path(p).exists():
            rec.inputs.append({"path": str(Path(p).resolve()), "name": _dataset_name(p),
                               "digest": dvc_hash([p])[:16]})
    _SPOOL, status = rec, "FAILED"
    try:
        yield DeferredRun(rec)
        status = "FINISHED"
    finally:
        _SPOOL = None
        rec.finish(status)
        _launch_replayer(root)


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


def _launch_replayer(root: Path) -> None:
    """A detached process replays the spool; if it dies, the next synchronous run or client replays instead."""
    code = "import sys, pathlib; from histcode.tracking import replay_spool; replay_spool(pathlib.Path(sys.argv[1]))"
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
                _log_input(item["path"], item["name"], item["digest"], "input")
    for art in rec["artifacts"]:
        mlflow_client.log_artifact(run_id, str(run_dir / art["file"]), artifact_path=art["artifact_path"])
    mlflow_client.set_terminated(run_id, status=rec["status"], end_time=rec["end_ms"])


def _dataset_name(path: str | Path) -> str:
    return "/".join(Path(path).resolve().parts[-2:])  # e.g. tcga_synth/adco, tcga_synth/slides.csv


def _log_input(path: str, name: str, digest: str, context: str) -> None:
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


def _spooled(what: str) -> run_spool.SpoolRecorder | None:
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
    _log_input(str(p.resolve()), _dataset_name(p), dvc_hash([p])[:16], context)


def log_metrics(metrics: Mapping[str, float], json_path: str | Path | None = None, step: int | None = None) -> None:
    """Log metrics to the active MLflow run and (when given) to the stage's metrics JSON: one dict, twice; its
    paper-table keys also go to ``reports/tables/`` (the declared DVC metrics, see ``histcode.tables``)."""
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and v == v}
    spool = _spooled("log_metrics(step=...)" if step is not None else "")
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


# The registry's door to MLflow: histcode.registry reaches mlflow only through the functions below.


def client() -> Any:
    """An ``MlflowClient`` on the project's tracking store (deferred runs replayed first)."""
    import mlflow

    uri = tracking_uri()
    root = spool_root(uri)
    if root is not None:
        replay_spool(root)
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient()


def active_run() -> Any:
    """The active MLflow run, or None."""
    _spooled("active_run")
    import mlflow

    return mlflow.active_run()


def log_text(text: str, artifact_file: str) -> None:
    """Log ``text`` as the artifact ``artifact_file`` of the active run."""
    spool = _spooled("")
    if spool is not None:
        spool.add_bytes(text.encode(), artifact_file)
        return
    import mlflow

    mlflow.log_text(text, artifact_file)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Log one local file as an artifact of the active run (under ``artifact_path``)."""
    spool = _spooled("")
    if spool is not None:
        spool.add_file(path, artifact_path)
        return
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def download_artifacts(**kwargs: Any) -> str:
    """``mlflow.artifacts.download_artifacts`` (artifact_uri= or run_id= + artifact_path=, dst_path=)."""
    import mlflow

    return str(mlflow.artifacts.download_artifacts(**kwargs))


def model_version_by_alias(mlflow_client: Any, name: str, alias: str) -> Any | None:
    """The ``ModelVersion`` behind ``name@alias``, or None when the registry has none."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


# MLflow's message starts with an ANSI colour code
NO_INPUT_EXAMPLE = r".*An input example was not provided when logging the model"


def log_pyfunc_model(name: str, *, python_model: str, artifacts: dict[str, str], input_example: Any, output: Any,
                     pip_requirements: list[str], registered_model_name: str) -> Any:
    """Log a pyfunc "model from code" in the active run (signature inferred from ``input_example`` → ``output``)
    and register it as a new version of ``registered_model_name``; returns MLflow's ``ModelInfo``."""
    _spooled("log_pyfunc_model")
    import mlflow
    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        # a hint that does not apply, printed on every `make demo` registration: the signature is given (inferred
        # above from real tensors); storing the example too would make MLflow load and run each model once more
        warnings.filterwarnings("ignore", message=NO_INPUT_EXAMPLE, category=UserWarning)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=python_model,
            artifacts=artifacts,
            signature=infer_signature(input_example, output),
            pip_requirements=pip_requirements,
            registered_model_name=registered_model_name,
            await_registration_for=60,
        )


def log_artifacts(directory: str | Path, artifact_path: str | None = None) -> None:
    """Attach a directory's files to the active run (under ``artifact_path``)."""
    spool = _spooled("")
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
    spool = _spooled("")
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
    spool = _spooled("")
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
    spool = _spooled("")
    if spool is not None:
        spool.params.update({str(k): v for k, v in params.items()})
        return
    import mlflow

    mlflow.log_params(dict(params))


def set_tags(tags: Mapping[str, str]) -> None:
    """Set tags on the active run."""
    spool = _spooled("")
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
    _spooled("log_step")
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_history(run_id: str, history: list[Mapping[str, float]], step_key: str = "epoch") -> None:
    """A finished curve (one dict per step, its step under ``step_key``) written to run ``run_id`` in batches."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(row[step_key])) for row in history for k, v in row.items()
               if k != step_key]
    mlflow_client = client()
    for i in range(0, len(metrics), 1000):
        mlflow_client.log_batch(run_id, metrics=metrics[i : i + 1000])


def terminate_run(run_id: str, status: str) -> None:
    """Mark a finished run ``status`` (e.g. ``KILLED`` for a pruned trial)."""
    client().set_terminated(run_id, status=status)
