"""Deferred MLflow runs: a light stage records its run to files and returns; a detached process replays it.

Importing mlflow and opening its sqlite store costs a light stage ~2.5 CPU-seconds, more than the work of
tiling 16 slides. A deferred run (``tracking.start_run(..., defer=True)``) writes what it would log (tags,
params, inputs, metrics, artifact files, start/end time, status) into ``<store>/spool/<id>/`` with no mlflow
import; ``tracking.replay_spool`` turns each complete record into a real run with the recorded times, then
deletes it. Replays run in a detached process started when the stage ends, and before every synchronous run
and client (under one lock), so nothing is lost if that process dies and runs keep their order.

This module owns the spool's file format; only the other ``histcode.tracking`` modules read or write it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORD = "run.json"
FILES = "files"
PARTIAL = ".partial"
LOCK = ".lock"
SYNC_ENV = "HISTCODE_MLFLOW_SYNC"  # "1": never defer (log in the stage's own process)


def deferral_allowed() -> bool:
    return os.environ.get(SYNC_ENV, "") not in ("1", "true", "yes")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class SpoolRecorder:
    """One deferred run being recorded under ``<root>/<id>.partial``; ``finish`` makes it visible atomically."""

    root: Path
    experiment: str
    run_name: str
    tracking_uri: str
    tags: dict[str, str]
    params: dict[str, Any]
    inputs: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: list[dict[str, str | None]] = field(default_factory=list)
    start_ms: int = field(default_factory=now_ms)
    name: str = ""

    def __post_init__(self) -> None:
        # names sort by start time, so replays keep the stages' order
        self.name = self.name or f"{self.start_ms:015d}-{uuid.uuid4().hex[:12]}"
        (self.dir / FILES).mkdir(parents=True, exist_ok=True)

    @property
    def dir(self) -> Path:
        return self.root / f"{self.name}{PARTIAL}"

    def add_file(self, path: str | Path, artifact_path: str | None) -> None:
        """Keep a copy now (a hard link where possible): a later stage may rewrite the original."""
        src = Path(path)
        dst = self.dir / FILES / str(len(self.artifacts)) / src.name
        dst.parent.mkdir(parents=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        self.artifacts.append({"file": str(dst.relative_to(self.dir)), "artifact_path": artifact_path})

    def add_bytes(self, data: bytes, artifact_file: str) -> None:
        """An artifact made in memory (a dict as JSON, a PNG) saved as ``artifact_file`` of the run."""
        rel = Path(artifact_file)
        dst = self.dir / FILES / str(len(self.artifacts)) / rel.name
        dst.parent.mkdir(parents=True)
        dst.write_bytes(data)
        parent = str(rel.parent) if str(rel.parent) not in ("", ".") else None
        self.artifacts.append({"file": str(dst.relative_to(self.dir)), "artifact_path": parent})

    def finish(self, status: str) -> Path:
        """Write the record and publish the folder (rename: a replayer never sees half a run)."""
        record = {"experiment": self.experiment, "run_name": self.run_name, "tracking_uri": self.tracking_uri,
                  "tags": self.tags, "params": {k: str(v) for k, v in self.params.items()},
                  "inputs": self.inputs, "metrics": self.metrics, "artifacts": self.artifacts,
                  "start_ms": self.start_ms, "end_ms": now_ms(), "status": status}
        (self.dir / RECORD).write_text(json.dumps(record, indent=1))
        final = self.root / self.name
        self.dir.rename(final)
        return final


def pending(root: Path) -> list[Path]:
    """Complete records under ``root``, oldest first (``.partial`` folders are runs still being recorded)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL)
                  and (p / RECORD).is_file())


def read_record(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RECORD).read_text())


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Exclusive lock over replays of ``root`` (one replayer at a time, across processes)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
