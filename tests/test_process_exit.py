"""Processes exit with their heap frozen (no last full collection over everything alive), once per process."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import atexit, gc
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))  # runs after the freeze
from histcode.process_exit import skip_exit_collection
junk = [[i] for i in range(10000)]
print("frozen before:", gc.get_freeze_count() > 0, flush=True)
skip_exit_collection()
skip_exit_collection()
import histcode.process_exit as pe
print("armed:", pe._ARMED, flush=True)
"""


def test_heap_is_frozen_only_at_exit() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["frozen before: False", "armed: True", "frozen at exit: True"]


def test_cli_exit_freezes_after_the_command(tmp_path) -> None:
    """``histcode`` arms the freeze even when the command fails (a bad option: exit code 2)."""
    code = ("import atexit, gc; atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, flush=True)); "
            "from histcode.cli import main; main(['--no-such-option'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout.strip().endswith("frozen True")
