"""Checks a stage makes before and while it writes: the output folder is writable, no second run works on
the same outputs, a full disk is reported as such. Each failure is one line naming the folder and the fix,
raised before any slide is processed (or, for a full disk, with the finished work kept)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from histcode.errors import HistcodeError


class OutputError(HistcodeError, RuntimeError):
    """An output folder cannot be written, is in use, or its disk is full."""


def ensure_writable(folder: str | Path, *, what: str = "outputs") -> Path:
    """Create ``folder`` if needed and prove a file can be written in it (removed again)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write {what} here ({exc.strerror or exc}); make it writable "
                          "(chmod/chown, a writable mount) or set base.data_dir to a writable folder") from exc
    return folder


@contextlib.contextmanager
def exclusive(target: str | Path, *, who: str) -> Iterator[None]:
    """Hold an exclusive lock on ``target`` (a folder) for this process; a second holder is refused at once.

    The lock file sits beside the folder (``.<name>.lock``) so it is never part of a DVC output. The OS
    releases it when the process dies, so a killed run never blocks the next one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    fh = open(lock, "a+")  # noqa: SIM115 (held for the whole block)
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise OutputError(f"{target}: {holder} is writing here; wait for it to finish (or stop it) before "
                              f"running {who} again") from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"{who} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})")
        fh.flush()
        yield
    finally:
        fh.close()


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT, also as HDF5 reports it (an OSError whose message carries ``errno = 28``)."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OSError) and (e.errno in (errno.ENOSPC, errno.EDQUOT)
                                       or "errno = 28" in str(e) or "No space left" in str(e)):
            return True
    return False


def disk_full(folder: str | Path, needed_bytes: float, done: int, remaining: int) -> OutputError:
    """The one-line error for a full disk: which folder, how much is free, how much more was needed."""
    folder = Path(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = 0
    return OutputError(f"{folder}: disk full ({_size(free)} free; about {_size(needed_bytes)} more needed for the "
                       f"{remaining} unfinished slide(s)); {done} finished slide(s) kept, no temp files left: free "
                       "space and rerun to resume")


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 2**10:.1f} KiB"


class EmptyCohortError(HistcodeError, RuntimeError):
    """A stage was given a cohort with nothing in it, or every item of it failed."""


def require_items(n: int, *, what: str, where: str | Path, fix: str) -> None:
    """A stage with nothing to do on a cohort that should have data fails loudly (not ``AUC nan``)."""
    if n <= 0:
        raise EmptyCohortError(f"{where}: no {what}; {fix}")
