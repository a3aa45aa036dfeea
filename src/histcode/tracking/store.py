"""Where runs go: the project's MLflow store, its experiments and its artifact folder (DESIGN §5).

``MLFLOW_TRACKING_URI`` wins when set (a team server); otherwise a sqlite store under ``mlruns/`` with
artifacts in ``mlruns/artifacts`` (the file store is deprecated in MLflow 3).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from histcode.errors import HistcodeError

MLRUNS_DIR = Path("mlruns")
EXPERIMENT_PREFIX = "histcode"
ARTIFACTS_DIR = "artifacts"  # next to the sqlite db: <store>/artifacts/<experiment id>/...
SPOOL_DIR = "spool"  # deferred runs waiting for replay, beside the sqlite db (histcode.tracking.spool)

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


def spool_root(uri: str | None = None) -> Path | None:
    """Where deferred runs of a local sqlite store wait (``<store>/spool``); None for a tracking server."""
    store = local_store(uri or tracking_uri())
    return store / SPOOL_DIR if store is not None else None
