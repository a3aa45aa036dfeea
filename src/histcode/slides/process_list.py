"""``data/tiles/<cohort>/process_list.csv``: one row per slide (done or failed, and why), CLAM's process list.

The one reader and writer of that file. Plain csv module, no pandas: it sits on tiling's start-up path
(issue 18). Rows of other shards survive a shard's update, under a file lock when shards run at once.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from histcode.atomic import write_text
from histcode.slides.notes import DAMAGED_PREFIX

# A slide scanned coarser than ``tile.target_mpp`` is tiled by enlarging a smaller level-0 read; beyond this factor
# its tiles are visibly blurred (e.g. a 10x scan in a 20x cohort: 2x), which the encoder never saw in pretraining.
UPSAMPLE_FLAG = 1.25

PROCESS_LIST_COLUMNS = ["slide", "status", "n_tiles", "reason", "mpp", "mpp_source", "tile_size_level0",
                        "tissue_area_mm2"]


def read_process_list(path: str | Path) -> list[dict[str, str]]:
    """Every row as written (cells are str; empty cells ``""``)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _render(rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PROCESS_LIST_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in PROCESS_LIST_COLUMNS])
    return buf.getvalue()


@contextlib.contextmanager
def _locked(path: Path, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def update_process_list(path: Path, rows: list[dict[str, Any]], manifest_ids: set[str], *, shared: bool) -> None:
    """Merge this run's rows into the file (rows of other shards kept, slides no longer in the manifest
    dropped), sorted by slide; written atomically, under a file lock when ``shared``."""
    with _locked(path.parent / ".process_list.lock", shared):
        kept: list[dict[str, Any]] = []
        if path.exists():
            new_ids = {r["slide"] for r in rows}
            kept = [r for r in read_process_list(path) if r["slide"] not in new_ids and r["slide"] in manifest_ids]
        write_text(path, _render(sorted([*kept, *rows], key=lambda r: r["slide"])))


def upsampled_slides(rows: Iterable[dict[str, str]], tile_px: int) -> dict[str, float]:
    """Done slides whose ``tile_px`` tiles were enlarged more than :data:`UPSAMPLE_FLAG` from the scan: slide →
    factor (``tile_px`` / level-0 px of one tile)."""
    out: dict[str, float] = {}
    for r in rows:
        size = _float_or_zero(r.get("tile_size_level0", ""))
        if r["status"] == "done" and size > 0 and tile_px / size > UPSAMPLE_FLAG:
            out[r["slide"]] = tile_px / size
    return out


def damaged_slides(rows: Iterable[dict[str, str]]) -> dict[str, str]:
    """{slide: note} of the done rows kept with regions no pyramid level could decode (``notes.DAMAGED_PREFIX``)."""
    return {r["slide"]: r["reason"] for r in rows
            if r["status"] == "done" and (r.get("reason") or "").startswith(DAMAGED_PREFIX)}


def cohort_metrics(path: str | Path, tile_px: int) -> dict[str, float]:
    """Numeric cohort summary (covers every shard written so far); ``n_upsampled`` counts the done slides whose
    ``tile_px`` tiles are enlarged from a coarser scan (:func:`upsampled_slides`), ``n_damaged`` those kept with
    unreadable regions (:func:`damaged_slides`)."""
    rows = read_process_list(path)
    done = [r for r in rows if r["status"] == "done"]
    tiles = np.array([int(float(r["n_tiles"])) for r in done], dtype=np.int64)
    area = np.array([_float_or_zero(r["tissue_area_mm2"]) for r in done], dtype=np.float64)
    return {
        "n_slides": len(rows),
        "n_done": len(done),
        "n_failed": len(rows) - len(done),
        "n_tiles": int(tiles.sum()),
        "tiles_per_slide_mean": float(tiles.mean()) if len(done) else 0.0,
        "tiles_per_slide_min": int(tiles.min()) if len(done) else 0,
        "tiles_per_slide_max": int(tiles.max()) if len(done) else 0,
        "tissue_area_mm2": float(area.sum()),
        "n_upsampled": len(upsampled_slides(done, tile_px)),
        "n_damaged": len(damaged_slides(done)),
    }


def _float_or_zero(cell: str) -> float:
    try:
        v = float(cell)
    except ValueError:
        return 0.0
    return v if math.isfinite(v) else 0.0
