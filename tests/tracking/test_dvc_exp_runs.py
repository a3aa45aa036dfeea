"""Defect 3: runs of ``dvc exp run --temp`` land in the project's store, tagged with the experiment name."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import histcode

STAGE = """
from histcode import tracking
with tracking.start_run("toy", run_name="toy-fit", stage="toy", params={"lr": 0.1}):
    tracking.log_metrics({"auc": 0.75}, "metrics.json")
"""

DVC_YAML = """
stages:
  toy:
    cmd: python stage.py
    deps: [stage.py]
    metrics:
      - metrics.json:
          cache: false
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def test_temp_experiment_logs_to_project_store(tmp_path: Path) -> None:
    src = Path(histcode.__file__).resolve().parents[1]
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PYTHONPATH=str(src), PATH=f"{bindir}:{env.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@x",
               DVC_SITE_CACHE_DIR=str(tmp_path / "site-cache"))
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "stage.py").write_text(STAGE)
    (proj / "dvc.yaml").write_text(DVC_YAML)
    (proj / ".gitignore").write_text("/mlruns/\n")
    _run(["git", "init", "-q"], proj, env)
    _run([str(bindir / "dvc"), "init", "-q"], proj, env)
    _run(["git", "add", "-A"], proj, env)
    _run(["git", "commit", "-qm", "init"], proj, env)
    _run([str(bindir / "dvc"), "exp", "run", "--temp", "-n", "lr-probe"], proj, env)

    db = proj / "mlruns" / "mlflow.db"
    assert db.exists(), "the temp experiment's run must be logged to the project's store"
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT r.name, r.artifact_uri FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
        "WHERE t.key = 'dvc.exp_name' AND t.value = 'lr-probe'"
    ).fetchall()
    assert [r[0] for r in rows] == ["toy-fit"]
    assert rows[0][1].removeprefix("file://").startswith(f"{proj}/mlruns/artifacts/")
    assert not list((proj / ".dvc" / "tmp").rglob("mlflow.db")), "no store may be left in DVC's temp copies"
