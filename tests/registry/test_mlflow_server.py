"""Drive a real ``mlflow server`` on a free loopback port: register → promote → load by alias over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from histcode import tracking
from histcode.registry import log_and_register


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.5)
        work = tmp_path / "client"
        work.mkdir()
        monkeypatch.chdir(work)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_register_promote_load_over_http(server: str, make_evidence, tiny_classifier, promote_and_load) -> None:  # type: ignore[no-untyped-def]
    assert tracking.tracking_uri() == server
    x = np.random.default_rng(1).normal(size=(2, 4)).astype("float32")
    with tracking.start_run("mil", run_name="server-fit", stage="train_mil"):
        mv = log_and_register(tiny_classifier(7), "histcode-mil", input_example=x)
    promote_and_load(mv, make_evidence, tiny_classifier, x)
    assert not (Path.cwd() / "mlruns").exists(), "the client must not create a local store when a server is used"
