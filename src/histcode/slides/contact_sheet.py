"""Contact sheets of a cohort's tissue masks: every slide's QC picture on a few pages, the fewest tiles first.

A cohort of hundreds of slides has hundreds of mask PNGs (``histcode.slides.render``); checking them one by one
is what nobody does. A contact sheet puts 30 on a page, with the slide id, tile count and tissue area under
each, failed slides first (as a cell naming the reason), then slides sorted by tile count, so the slides where
tiling most likely went wrong (blank, tiny, or a mask that dropped tissue) open the first page. One legend per
page explains the colours. Pages are built from the files on disk (``process_list.csv`` and ``masks/``), so
they are the same whether the cohort was tiled in one run, resumed or sharded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from histcode.atomic import atomic_path
from histcode.errors import HistcodeError
from histcode.slides.process_list import damaged_slides, read_process_list, upsampled_slides
from histcode.slides.render import DAMAGED_LEGEND, _legend

CELL_PX = 320  # longer side of one slide's picture on the page
CAPTION_PX = 34  # two caption lines under each picture
PAD_PX = 8
FONT = cv2.FONT_HERSHEY_SIMPLEX
JPEG_QUALITY = 85


class SheetInputError(HistcodeError, FileNotFoundError):
    """The cohort has no process list: it was never tiled."""


@dataclass(frozen=True)
class SheetEntry:
    """One slide on a sheet: its row of ``process_list.csv`` and its mask picture (None: failed or missing)."""

    slide: str
    status: str
    n_tiles: int
    tissue_mm2: float
    reason: str
    mask: Path | None
    enlarged: float | None = None  # tiles enlarged from a coarser scan by this factor (flagged ones only)
    damaged: bool = False  # kept with regions no pyramid level could decode (its mask shows them red)


def read_entries(process_list: Path, masks_dir: Path, only: set[str] | None = None,
                 tile_px: int | None = None) -> list[SheetEntry]:
    """Every slide of ``process_list`` (or those in ``only``) in sheet order: slides without a picture first
    (failed, or their mask PNG is missing), then the rest; each group by tile count, then slide id. With
    ``tile_px`` a slide scanned coarser than the target is marked with its enlargement (``upsampled_slides``)."""
    if not Path(process_list).is_file():
        raise SheetInputError(f"{process_list}: no process list; tile the cohort first (`histcode tile --cohort "
                              f"<cohort>`)")
    out = []
    rows = read_process_list(process_list)
    enlarged = upsampled_slides(rows, tile_px) if tile_px else {}
    damaged = damaged_slides(rows)
    for r in rows:
        if only is not None and r["slide"] not in only:
            continue
        png = masks_dir / f"{r['slide']}.png"
        done = r["status"] == "done"
        out.append(SheetEntry(slide=r["slide"], status=r["status"], n_tiles=int(float(r["n_tiles"] or 0)),
                              tissue_mm2=float(r.get("tissue_area_mm2") or "nan"), reason=r.get("reason") or "",
                              mask=png if done and png.is_file() else None, enlarged=enlarged.get(r["slide"]),
                              damaged=r["slide"] in damaged))
    return sorted(out, key=lambda e: (e.mask is not None, e.n_tiles, e.slide))


def _picture(entry: SheetEntry) -> np.ndarray:
    """The slide's QC picture without its own legend strip, fitted into CELL_PX (BGR)."""
    img = cv2.imread(str(entry.mask), cv2.IMREAD_COLOR) if entry.mask is not None else None
    if img is None:
        cell = np.full((CELL_PX * 3 // 4, CELL_PX, 3), 235, np.uint8)
        what = entry.status.upper() if entry.status != "done" else "MASK PNG MISSING"
        cv2.putText(cell, what, (10, 40), FONT, 0.7, (0, 0, 200), 2, cv2.LINE_AA)
        for i, k in enumerate(range(0, min(len(entry.reason), 150), 36)):
            cv2.putText(cell, entry.reason[k:k + 36], (10, 75 + 22 * i), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        return cell
    # render_mask appends a strip whose height depends on the width (and a damaged slide's extra legend entry)
    strip = _legend(img.shape[1], "", DAMAGED_LEGEND if entry.damaged else ()).shape[0]
    img = img[: max(1, img.shape[0] - strip)]
    f = CELL_PX / max(img.shape[:2])
    size = (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_NEAREST)


def _cell(entry: SheetEntry) -> np.ndarray:
    """The picture with two caption lines right under it (slides are rarely square)."""
    pic = _picture(entry)
    cell = np.full((pic.shape[0] + CAPTION_PX, CELL_PX, 3), 255, np.uint8)
    cell[: pic.shape[0], : pic.shape[1]] = pic
    y = pic.shape[0]
    name = entry.slide if len(entry.slide) <= 44 else entry.slide[:41] + "..."
    area = f"{entry.tissue_mm2:.1f} mm2 tissue" if math.isfinite(entry.tissue_mm2) else "tissue n/a"
    detail = f"{entry.n_tiles} tiles, {area}" if entry.status == "done" else entry.status
    if entry.enlarged:  # a coarse scan: its tiles are blurred (a red caption, as a failed slide gets)
        detail += f", {entry.enlarged:.1f}x enlarged"
    if entry.damaged:  # part of the file is unreadable: red, as above
        detail += ", damaged"
    colour = (0, 0, 0) if entry.status == "done" and not (entry.enlarged or entry.damaged) else (0, 0, 200)
    cv2.putText(cell, name, (2, y + 13), FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(cell, detail, (2, y + 29), FONT, 0.42, colour, 1, cv2.LINE_AA)
    return cell


def render_pages(entries: list[SheetEntry], title: str, *, per_page: int = 30, cols: int = 6) -> list[np.ndarray]:
    """BGR pages of ``per_page`` cells in ``cols`` columns, each under a header with ``title`` and the legend;
    each row is as tall as its tallest cell."""
    if per_page < 1 or cols < 1:
        raise ValueError(f"per_page and cols must be >= 1, got {per_page}, {cols}")
    n_pages = max(1, math.ceil(len(entries) / per_page))
    width = cols * (CELL_PX + PAD_PX) + PAD_PX
    pages = []
    for p in range(n_pages):
        page = entries[p * per_page:(p + 1) * per_page]
        extra = DAMAGED_LEGEND if any(e.damaged for e in page) else ()  # red explained where it is drawn
        cells = [_cell(e) for e in page]
        parts = [_legend(width, f"{title}, page {p + 1}/{n_pages}: failed slides first, then by tile count "
                                f"(fewest first)", extra)]
        for r in range(0, max(len(cells), 1), cols):
            row_cells = cells[r:r + cols]
            row = np.full((max((c.shape[0] for c in row_cells), default=CAPTION_PX) + PAD_PX, width, 3), 255,
                          np.uint8)
            for i, c in enumerate(row_cells):
                x = PAD_PX + i * (CELL_PX + PAD_PX)
                row[PAD_PX:PAD_PX + c.shape[0], x:x + CELL_PX] = c
            parts.append(row)
        pages.append(np.concatenate(parts, axis=0))
    return pages


def write_contact_sheets(process_list: Path, masks_dir: Path, out_dir: Path, title: str, *,
                         per_page: int = 30, cols: int = 6, only: set[str] | None = None,
                         tile_px: int | None = None) -> list[Path]:
    """Write ``out_dir/contact_sheet_pNN.jpg`` for every slide of ``process_list`` (or those in ``only``: one
    shard's slides); returns the paths.

    JPEG: a page is 30 downscaled slide pictures, which PNG stores at ~5 MB and JPEG at a tenth of that."""
    entries = read_entries(process_list, masks_dir, only, tile_px)
    paths = []
    for i, page in enumerate(render_pages(entries, title, per_page=per_page, cols=cols), start=1):
        ok, buf = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        path = Path(out_dir) / f"contact_sheet_p{i:02d}.jpg"
        if not ok:
            raise OSError(f"{path}: JPEG encoding failed for a page of shape {page.shape}")
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.tobytes())
        paths.append(path)
    return paths
