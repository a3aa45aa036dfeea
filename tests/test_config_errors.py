"""Issue 16 item 10: a params mistake is one line naming the file, the key and the valid values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _bad(tmp_path: Path, section: str, key: str, value: object, drop: str | None = None) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if drop:
        params[section].pop(drop)
    params[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize(("script", "section", "key", "value", "drop", "expected"), [
    ("tile.py", "tile", "tile_pxx", 256, "tile_px",
     "params.yaml:tile: unknown key(s) ['tile_pxx']; valid: ['a_h', 'a_t'"),
    ("tile.py", "tile", "tile_px", "256px", None, "params.yaml:tile.tile_px: expected int, got str '256px'"),
    ("pretrain.py", "pretrain", "warmup_epochs", 10, None,  # the paper profile's warmup with a 2-epoch pilot run
     "pretrain.warmup_epochs = 10 must be in [0, epochs) = [0, 4)."),
    ("extract.py", "extract", "batch_size", 0, None, "extract.batch_size = 0 must be >= 1."),
    ("train_mil.py", "mil", "pooling", "attention", None,
     "params.yaml: mil.pooling: 'attention' is not a registered pooling; valid: ['abmil', 'clam_sb', 'dsmil', "
     "'gated_attention', 'max', 'mean', 'mil_rnn', 'transmil']"),
])
def test_one_line_with_file_key_and_valid_values(tmp_path: Path, script: str, section: str, key: str,
                                                 value: object, drop: str | None, expected: str) -> None:
    params = _bad(tmp_path, section, key, value, drop)
    args = ["--cohort", "tcga_synth"] if script in ("tile.py", "extract.py") else []
    proc = subprocess.run([sys.executable, str(ROOT / "pipelines" / script), "--params", str(params), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "MLFLOW_TRACKING_URI":
                               f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"{script.removesuffix('.py')}: error: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr  # "<stage>: error: <file>:<key>: ..."
    message = lines[0].split(": error: ", 1)[1]
    assert message.startswith(str(params)) and expected in message


def test_pooling_names_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pooling another module registers is valid in params without touching the config code."""
    from histcode.config import ConfigError, build
    from histcode.mil import pool_base
    from histcode.mil.config import MilConfig
    from histcode.mil.methods.basic import MeanPool

    with pytest.raises(ConfigError, match="'toy_pool' is not a registered pooling"):
        build(MilConfig, {"pooling": "toy_pool"}, "mil")
    monkeypatch.setitem(pool_base.POOLINGS, "toy_pool", MeanPool)
    assert build(MilConfig, {"pooling": "toy_pool"}, "mil").pooling == "toy_pool"
