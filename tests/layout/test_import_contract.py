"""The layer contract of pyproject.toml (import-linter) holds on the tree and catches what it is for.

``lint-imports`` runs on the real sources; then on a copy of them with one deliberate breach each (an upward
import, the pipeline reading the generator, a stage importing mlflow), where it must fail and name the breach.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_contract() -> None:
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in out.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("layout")
    shutil.copytree(ROOT / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


@pytest.mark.parametrize(
    ("module", "line", "contract", "breach"),
    [
        ("metrics/classification.py", "from histcode.mil import pooling as _up  # noqa", "data flows one way",
         "histcode.metrics is not allowed to import histcode.mil"),
        ("io/attention.py", "from histcode.registry import names as _up  # noqa", "data flows one way",
         "histcode.io is not allowed to import histcode.registry"),
        ("evaluation/de_truth.py", "from histcode.synth import layout as _gen  # noqa",
         "the pipeline never reads the generator", "histcode.evaluation is not allowed to import histcode.synth"),
        ("slides/stage.py", "import mlflow as _ml  # noqa", "tracking is the only door to mlflow",
         "histcode.slides is not allowed to import mlflow"),
    ],
)
def test_a_deliberate_breach_fails(copy: Path, module: str, line: str, contract: str, breach: str) -> None:
    path = copy / "src" / "histcode" / module
    original = path.read_text()
    path.write_text(original + "\n" + line + "\n")
    try:
        out = lint(copy)
    finally:
        path.write_text(original)
    assert out.returncode != 0
    assert f"{contract}" in out.stdout and "BROKEN" in out.stdout
    assert breach in out.stdout, out.stdout[-3000:]
