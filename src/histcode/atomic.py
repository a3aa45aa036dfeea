"""Atomic file writes: temp file in the same directory, then ``os.replace``.

An interrupted run never leaves a half-written output under its final name, so resume logic can trust
that an existing file is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs should be readable like any other
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_torch(path: str | Path, obj: Any) -> None:
    """``torch.save`` atomically and reproducibly: saved to a file, torch names the zip's root folder after the
    file, so a random temp name made every save differ; saved to a buffer, the root is always ``archive``."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def save_figure(fig: Any, path: str | Path, *, dpi: float, **kwargs: Any) -> Path:
    """Write a matplotlib figure atomically in the format of ``path``'s suffix (PNG by default) and close it.
    PNGs use zlib level 1: 3x faster to encode than PIL's default 6 for 1-3 % more bytes on our figures."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt == "png":
        kwargs.setdefault("pil_kwargs", {"compress_level": 1})
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt, **kwargs)
    finally:
        plt.close(fig)
    return path


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_csv(path: str | Path, df: Any, **kwargs: Any) -> None:
    """Write a pandas DataFrame as CSV atomically (index off by default)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)


def write_parquet(path: str | Path, df: Any, **kwargs: Any) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, **kwargs)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
