"""``histcode server start|stop|status``: a team MLflow tracking server on a project-local PostgreSQL.

Why: the sqlite store in ``mlruns/`` serves one person; a team (or several machines running ``dvc exp``)
needs one server with a real database. ``start`` initialises a PostgreSQL cluster under ``.server/pg`` (the
Debian ``postgresql`` package; run as the ``postgres`` user when invoked as root, as PostgreSQL refuses root),
creates the ``mlflow`` database, then starts ``mlflow server`` on 127.0.0.1 with proxied artifacts under
``.server/artifacts``. Everything it creates lives in ``.server/`` (git-ignored); ``stop`` stops both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from histcode.errors import HistcodeError

log = logging.getLogger(__name__)

STATE_DIR = Path(".server")
DB_NAME = "mlflow"
DB_USER = "histcode"


class ServerError(HistcodeError, RuntimeError):
    """The tracking server or its database could not be started/stopped (message says why and the fix)."""


@dataclass
class ServerState:
    """What ``start`` launched, saved as ``.server/server.json`` for ``stop``/``status``."""

    tracking_uri: str
    port: int
    pg_port: int
    mlflow_pid: int


def pg_bindir() -> Path:
    """Directory of ``initdb``/``pg_ctl``: on PATH, else Debian's ``/usr/lib/postgresql/<ver>/bin``."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    raise ServerError("PostgreSQL binaries (initdb, pg_ctl) not found: `apt-get install -y postgresql`.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def runuser() -> str:
    """util-linux's ``runuser``: on PATH, else in the sbin folders a non-login root shell may leave off PATH
    (a fresh clone's `make test` under ``PATH=/usr/local/bin:/usr/bin:/bin`` failed on it)."""
    found = shutil.which("runuser") or next((p for p in ("/usr/sbin/runuser", "/sbin/runuser")
                                             if os.access(p, os.X_OK)), None)
    if found is None:
        raise ServerError("runuser (util-linux) not found, needed to run PostgreSQL as the `postgres` user under "
                          "root: `apt-get install -y util-linux`, or run as a non-root user.")
    return found


def _as_pg_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: under root, run its tools as the ``postgres`` system user."""
    if os.geteuid() != 0:
        return cmd
    return [runuser(), "-u", "postgres", "--", *cmd]


def _pg_owner(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def _run(cmd: list[str], what: str, **kw: object) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if out.returncode != 0:
        raise ServerError(f"{what} failed ({' '.join(cmd[:6])} …): {(out.stderr or out.stdout).strip()[-800:]}")


def _state_file(root: Path) -> Path:
    return root / STATE_DIR / "server.json"


def read_state(root: Path) -> ServerState | None:
    f = _state_file(root)
    return ServerState(**json.loads(f.read_text())) if f.exists() else None


def _pg_dirs(root: Path) -> tuple[Path, Path, Path]:
    pg = (root / STATE_DIR / "pg").resolve()
    return pg, pg / "data", pg / "password"


def start_postgres(root: Path, pg_port: int) -> str:
    """Initialise (first time) and start the project's cluster on 127.0.0.1:pg_port; return the SQLAlchemy URI
    (psycopg2 named explicitly: SQLAlchemy 2.1 defaults ``postgresql://`` to psycopg 3)."""
    bindir = pg_bindir()
    pg, data, pwfile = _pg_dirs(root)
    if os.geteuid() == 0:
        probe = subprocess.run(_as_pg_user(["test", "-x", str(root.resolve())]))
        if probe.returncode != 0:
            raise ServerError(f"{root.resolve()}: the `postgres` user cannot enter this directory (running as root); "
                              "put the project under a directory others can traverse (chmod o+x).")
    pg.mkdir(parents=True, exist_ok=True)
    _pg_owner(pg)
    if not (data / "PG_VERSION").exists():
        pwfile.write_text(secrets.token_urlsafe(24) + "\n")
        pwfile.chmod(0o600)
        _pg_owner(pwfile)
        _run(_as_pg_user([str(bindir / "initdb"), "-D", str(data), "-U", DB_USER, f"--pwfile={pwfile}",
                          "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"]), f"initdb {data}")
    password = pwfile.read_text().strip()
    _run(_as_pg_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(pg / "postgres.log"), "-w", "-t", "60",
                      "-o", f"-c listen_addresses=127.0.0.1 -p {pg_port} -c unix_socket_directories=''", "start"]),
         f"PostgreSQL start (log: {pg / 'postgres.log'})")
    env = {**os.environ, "PGPASSWORD": password}
    exists = subprocess.run([str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(pg_port), "-U",
                             DB_USER, "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DB_NAME}'"],
                            capture_output=True, text=True, env=env)
    if exists.stdout.strip() != "1":
        _run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", DB_USER, DB_NAME],
             f"createdb {DB_NAME}", env=env)
    return f"postgresql+psycopg2://{DB_USER}:{password}@127.0.0.1:{pg_port}/{DB_NAME}"


def stop_postgres(root: Path) -> None:
    _, data, _ = _pg_dirs(root)
    if (data / "postmaster.pid").exists():
        _run(_as_pg_user([str(pg_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
             "PostgreSQL stop")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float, logfile: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = logfile.read_text()[-1500:] if logfile.exists() else ""
            raise ServerError(f"mlflow server did not become healthy at {url} (log {logfile}):\n{tail}")
        time.sleep(0.5)


def start(root: Path = Path("."), port: int = 5001, timeout_s: float = 180) -> ServerState:
    """Start PostgreSQL + ``mlflow server`` for the project at ``root``; returns the saved state."""
    root = root.resolve()
    state = read_state(root)
    if state is not None and _alive(state.mlflow_pid):
        return state
    pg_port = free_port()
    db_uri = start_postgres(root, pg_port)
    artifacts = root / STATE_DIR / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    logfile = root / STATE_DIR / "mlflow.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    with logfile.open("ab") as fh:
        proc = subprocess.Popen(
            [str(mlflow_bin), "server", "--backend-store-uri", db_uri, "--serve-artifacts",
             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root,
            start_new_session=True,  # its own process group: stop() ends the server and its workers together
        )
    url = f"http://127.0.0.1:{port}"
    state = ServerState(tracking_uri=url, port=port, pg_port=pg_port, mlflow_pid=proc.pid)
    _state_file(root).write_text(json.dumps(asdict(state)))
    try:
        _wait_healthy(url, proc, timeout_s, logfile)
    except ServerError:
        stop(root)
        raise
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def stop(root: Path = Path(".")) -> bool:
    """Stop the project's mlflow server and PostgreSQL; False when nothing was running."""
    root = root.resolve()
    state = read_state(root)
    ran = False
    if state is not None and _alive(state.mlflow_pid):
        os.killpg(state.mlflow_pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(state.mlflow_pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(state.mlflow_pid, os.WNOHANG)  # reap when we are its parent (tests)
            time.sleep(0.2)
        if _alive(state.mlflow_pid):
            os.killpg(state.mlflow_pid, signal.SIGKILL)
        ran = True
    _state_file(root).unlink(missing_ok=True)
    _, data, _ = _pg_dirs(root)
    if (data / "postmaster.pid").exists():
        stop_postgres(root)
        ran = True
    return ran


def register(app: typer.Typer) -> None:
    server_app = typer.Typer(help="Team MLflow tracking server on a project-local PostgreSQL (.server/).",
                             no_args_is_help=True)
    app.add_typer(server_app, name="server")

    @server_app.command("start")
    def start_cmd(port: int = typer.Option(5001, help="port of the tracking server on 127.0.0.1")) -> None:
        """Start PostgreSQL and the MLflow server; print the MLFLOW_TRACKING_URI to export."""
        try:
            state = start(Path("."), port)
        except ServerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"MLflow server on PostgreSQL running (logs in {STATE_DIR}/). Point runs at it with:\n"
                   f"  export MLFLOW_TRACKING_URI={state.tracking_uri}\n"
                   f"Stop it with `make server-stop`.")

    @server_app.command("stop")
    def stop_cmd() -> None:
        """Stop the MLflow server and PostgreSQL started by ``histcode server start``."""
        try:
            ran = stop(Path("."))
        except ServerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo("server stopped" if ran else "no server was running")

    @server_app.command("status")
    def status_cmd() -> None:
        """Say whether the server runs and its tracking URI."""
        state = read_state(Path(".").resolve())
        if state is None or not _alive(state.mlflow_pid):
            typer.echo("no server running: `make server` starts one")
            raise typer.Exit(1)
        typer.echo(f"running: MLFLOW_TRACKING_URI={state.tracking_uri} (PostgreSQL on 127.0.0.1:{state.pg_port})")

    @server_app.command("flush")
    def flush_cmd() -> None:
        """Log deferred runs of light stages (``tile``) into the project's store now; ``make ui`` runs it first."""
        from histcode import tracking

        n = tracking.replay_spool()
        typer.echo(f"{n} deferred MLflow run(s) logged" if n else "no deferred MLflow runs pending")
