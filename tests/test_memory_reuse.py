"""Freed large buffers are reused by the next allocation (no fresh pages to fault in), in stage processes too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

PAGES = (64 << 20) // 4096  # a 64 MiB buffer in 4 KiB pages

# malloc, fill and free a 64 MiB buffer six times (what a torch step does with its activations); the page
# faults of the last five
CHURN = """
import ctypes, resource
def churn():
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    def once():
        p = libc.malloc(64 << 20)
        ctypes.memset(p, 1, 64 << 20)
        libc.free(p)
    once()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        once()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
"""


def _faults(code: str, tmp_path: Path) -> int:
    (tmp_path / "churn.py").write_text(CHURN)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode in (0, 2), proc.stderr
    return int(next(line for line in proc.stdout.splitlines() if line.startswith("faults")).split()[1])


def test_by_default_every_large_buffer_comes_back_as_fresh_pages(tmp_path: Path) -> None:
    assert _faults("from churn import churn; print('faults', churn())", tmp_path) >= 5 * PAGES * 0.9


def test_freed_buffers_are_reused(tmp_path: Path) -> None:
    code = ("from histcode.memory_reuse import reuse_freed_memory\nassert reuse_freed_memory()\n"
            "from churn import churn; print('faults', churn())")
    assert _faults(code, tmp_path) < PAGES * 0.05


def test_histcode_commands_reuse_freed_memory(tmp_path: Path) -> None:
    """``histcode`` (so every DVC stage) sets it before its command runs, also for one that fails."""
    code = ("import atexit\nfrom churn import churn\natexit.register(lambda: print('faults', churn(), flush=True))\n"
            "from histcode.cli import main\nmain(['--no-such-option'])")
    assert _faults(code, tmp_path) < PAGES * 0.05


def test_spawned_worker_processes_reuse_freed_memory(tmp_path: Path) -> None:
    """MIL and per-gene fits run in spawned processes, which start with glibc's defaults."""
    code = ("from churn import churn\nfrom histcode.worker_pool import torch_pool\n"
            "if __name__ == '__main__':\n    print('faults', torch_pool(1, 1).submit(churn).result())")
    assert _faults(code, tmp_path) < PAGES * 0.05
