"""The team tracking server (`make server`): PostgreSQL + mlflow server, a stage's run, register → promote → load.

Starts a real PostgreSQL cluster and ``mlflow server`` through ``histcode.server`` (what ``make server`` runs)
in a throwaway project directory, then stops both. CI installs the Debian ``postgresql`` package (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest

from histcode import server, tracking
from histcode.registry import log_and_register

try:
    server.pg_bindir()
    HAVE_PG = True
except server.ServerError:
    HAVE_PG = False


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # not tmp_path: under root, PostgreSQL runs as `postgres`, which must be able to enter the project directory
    root = Path(tempfile.mkdtemp(prefix="histcode-server-", dir="/tmp"))
    root.chmod(0o755)
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        yield root
    finally:
        server.stop(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_PG, reason="PostgreSQL binaries absent (apt-get install -y postgresql; .ci/run does)")
def test_postgres_server_stage_register_promote_load(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                     make_evidence, tiny_classifier, promote_and_load) -> None:  # type: ignore[no-untyped-def]
    state = server.start(project, port=server.free_port())
    assert state.tracking_uri.startswith("http://127.0.0.1:")
    assert (project / ".server" / "pg" / "data" / "PG_VERSION").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", state.tracking_uri)

    # a small stage (the stain reference fit's tracking path: params, tags, metrics JSON + MLflow) on the server
    x = np.random.default_rng(1).normal(size=(2, 4)).astype("float32")
    with tracking.start_run("mil", run_name="server-fit", stage="train_mil", params={"lr": 0.01}) as run:
        tracking.log_metrics({"auc": 0.8}, project / "reports" / "mil.json")
        mv = log_and_register(tiny_classifier(7), "histcode-mil", input_example=x)
    promote_and_load(mv, make_evidence, tiny_classifier, x)

    # the run and the model live in PostgreSQL and the server's artifact root, nothing in a local store
    import mlflow

    got = mlflow.MlflowClient().get_run(run.info.run_id)
    assert got.data.metrics["auc"] == pytest.approx(0.8) and got.data.params["lr"] == "0.01"
    assert not (project / "mlruns").exists()
    assert any((project / ".server" / "artifacts").rglob("MLmodel"))
    assert not list(project.rglob("*.db")) or all(
        not sqlite3.connect(p).execute("SELECT name FROM sqlite_master WHERE name='runs'").fetchone()
        for p in project.rglob("*.db"))

    assert server.stop(project)
    assert not (project / ".server" / "pg" / "data" / "postmaster.pid").exists()
    assert not server.stop(project), "a second stop finds nothing running"
    assert os.environ["MLFLOW_TRACKING_URI"] == state.tracking_uri


@pytest.mark.skipif(os.geteuid() != 0 or not any(os.access(p, os.X_OK) for p in ("/usr/sbin/runuser", "/sbin/runuser")),
                    reason="needs root and util-linux's runuser in an sbin folder")
def test_runuser_is_found_off_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under root the PostgreSQL tools run through ``runuser``, which lives in sbin: a shell whose PATH lacks
    the sbin folders (a fresh clone's `make test` from a non-login shell) still finds it."""
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    cmd = server._as_pg_user(["pg_ctl", "status"])
    assert cmd[0] in ("/usr/sbin/runuser", "/sbin/runuser") and cmd[1:] == ["-u", "postgres", "--", "pg_ctl", "status"]
    monkeypatch.setattr(server.os, "access", lambda *_: False)
    monkeypatch.setattr(server.shutil, "which", lambda *_: None)
    with pytest.raises(server.ServerError, match=r"runuser .* not found"):
        server._as_pg_user(["pg_ctl", "status"])
