"""The tissue-mask QC PNG written beside each coords file: what was kept, cut and excluded, and the tiles.

Drawn on the segmentation image already in memory (no second read of the slide), upscaled by an integer
factor so small slides stay legible. Colours (legend strip under the image): kept tissue green, adipose
recognised as tissue yellow, holes cut as glass blue, pen ink magenta, grey artefacts (bubble rims, dust)
orange; glass is left as scanned; kept tiles are dark-green squares; on a damaged slide, regions no pyramid level
could decode are red (their legend entry appears only then, so an intact slide's picture is unchanged).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from histcode.atomic import atomic_path
from histcode.slides.mask import TissueMask

# BGR (OpenCV order)
TISSUE_BGR = (0, 190, 0)
FAT_BGR = (0, 215, 255)
HOLE_BGR = (255, 80, 0)
PEN_BGR = (255, 0, 255)
ARTEFACT_BGR = (0, 120, 255)
TILE_BGR = (0, 90, 0)
UNREADABLE_BGR = (0, 0, 230)
LEGEND = (("kept tissue", TISSUE_BGR), ("adipose (kept)", FAT_BGR), ("hole cut (glass)", HOLE_BGR),
          ("pen ink (excluded)", PEN_BGR), ("grey artefact (excluded)", ARTEFACT_BGR), ("kept tile", TILE_BGR))
DAMAGED_LEGEND = (("unreadable (damaged file)", UNREADABLE_BGR),)  # only on a damaged slide's picture
MIN_SIDE = 512  # upscale small segmentation images to at least this longer side


def _tint(img: np.ndarray, where: np.ndarray, bgr: tuple[int, int, int], alpha: float) -> None:
    """Blend ``bgr`` into ``img`` where ``where``: the blend of a uint8 value is a 256-entry table per channel,
    applied with cv2.LUT and copied under the mask (no float image, no fancy indexing)."""
    if where.any():
        levels = np.arange(256, dtype=np.float64)[:, None]
        table = ((1 - alpha) * levels + alpha * np.asarray(bgr, np.float64)).astype(np.uint8)  # (256, 3)
        np.copyto(img, cv2.LUT(img, table.reshape(1, 256, 3)), where=where[..., None])


def _legend(width: int, title: str, extra: tuple[tuple[str, tuple[int, int, int]], ...] = ()) -> np.ndarray:
    """White strip: title line, then one colour box and label per legend entry, wrapped to ``width``."""
    scale = max(0.4, min(0.6, width / 1400))
    row_h = int(26 * scale / 0.5)
    items, x, rows = [], 8, 1
    for label, colour in (*LEGEND, *extra):
        (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        if x + row_h + tw > width - 8 and x > 8:
            x, rows = 8, rows + 1
        items.append((x, rows, label, colour))
        x += row_h + tw + 16
    strip = np.full(((rows + 1) * row_h + 6, width, 3), 255, np.uint8)
    cv2.putText(strip, title, (8, row_h - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    for x0, r, label, colour in items:
        y0 = r * row_h + 4
        cv2.rectangle(strip, (x0, y0), (x0 + row_h - 8, y0 + row_h - 8), colour, -1)
        cv2.putText(strip, label, (x0 + row_h, y0 + row_h - 11), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return strip


def render_mask(seg_rgb: np.ndarray, tissue: TissueMask, coords: np.ndarray, size: int, *, title: str = "",
                max_px: int = 2048, unreadable: np.ndarray | None = None) -> np.ndarray:
    """QC picture of one slide. seg_rgb: (H, W, 3) uint8 RGB segmentation image (``tissue.downsample``
    level-0 px per px); coords (N, 2) level-0 tiles of side ``size``; unreadable (H, W) bool: the pixels the reader
    could not decode at any level. Returns (H', W', 3) uint8 BGR."""
    h, w = seg_rgb.shape[:2]
    f = max(1, min(-(-MIN_SIDE // max(h, w)), max_px // max(h, w)))
    img = cv2.cvtColor(np.ascontiguousarray(seg_rgb), cv2.COLOR_RGB2BGR)  # tint at mask resolution ...
    fat = tissue.fat if tissue.fat is not None else np.zeros((h, w), bool)
    _tint(img, tissue.mask & ~fat, TISSUE_BGR, 0.25)
    _tint(img, fat, FAT_BGR, 0.45)
    _tint(img, tissue.pen, PEN_BGR, 0.55)
    if tissue.artefact is not None:
        _tint(img, tissue.artefact, ARTEFACT_BGR, 0.6)
    if tissue.holes:
        holes = np.zeros((h, w), np.uint8)
        cv2.drawContours(holes, tissue.holes, -1, 1, thickness=cv2.FILLED)
        _tint(img, holes.astype(bool) & ~tissue.mask & ~tissue.pen, HOLE_BGR, 0.45)  # islands are tissue, rings ink
    damaged = unreadable is not None and bool(unreadable.any())
    if damaged:
        _tint(img, unreadable, UNREADABLE_BGR, 0.7)
    if f > 1:  # ... then upscale once for legible outlines and tiles
        img = cv2.resize(img, (w * f, h * f), interpolation=cv2.INTER_NEAREST)
    line = max(1, round(max(img.shape[:2]) / 700))
    scale = f / tissue.downsample  # level-0 px → picture px
    for contours, colour in ((tissue.contours, TISSUE_BGR), (tissue.holes, HOLE_BGR)):
        scaled = [np.round((c.astype(np.float64) + 0.5) * f).astype(np.int32) for c in contours]
        if scaled:
            cv2.drawContours(img, scaled, -1, colour, line)
    side = size * scale
    for x, y in np.asarray(coords):
        p0 = (round(x * scale), round(y * scale))
        cv2.rectangle(img, p0, (round(x * scale + side) - 1, round(y * scale + side) - 1), TILE_BGR, 1)
    n = len(coords)
    text = f"{title}  {n} tiles of {size} px, mask at {tissue.downsample:g}x" if title else f"{n} tiles"
    extra = DAMAGED_LEGEND if damaged else ()
    return np.concatenate([img, _legend(img.shape[1], text, extra)], axis=0)


def write_png(path: str | Path, bgr: np.ndarray) -> None:
    """Write a BGR image as PNG atomically (OpenCV's encoder; deterministic bytes). No row filter: the picture is
    upscaled by pixel repetition, which deflate finds without one, at half the encoding time (issue 18)."""
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER,
                                         cv2.IMWRITE_PNG_FILTER_NONE])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed for an image of shape {bgr.shape}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
