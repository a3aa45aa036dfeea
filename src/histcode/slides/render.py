"""The tissue-mask PNG written beside each coords file: thumbnail, tissue outline, ink, kept tile grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from histcode.atomic import atomic_path
from histcode.slides.mask import TissueMask

TISSUE_BGR = (0, 200, 0)
HOLE_BGR = (255, 0, 0)
PEN_BGR = (255, 0, 255)
TILE_BGR = (0, 90, 0)


def render_mask(thumb: np.ndarray, thumb_ds: float, tissue: TissueMask, coords: np.ndarray,
                size: int) -> np.ndarray:
    """Draw the segmentation on a thumbnail. thumb: (H, W, 3) uint8 RGB at ``thumb_ds`` level-0 px per
    px; coords (N, 2) level-0 tiles of side ``size``. Returns (H, W, 3) uint8 BGR (OpenCV order)."""
    img = cv2.cvtColor(np.ascontiguousarray(thumb), cv2.COLOR_RGB2BGR)
    scale = tissue.downsample / thumb_ds  # mask px → thumbnail px
    if tissue.pen.any():
        pen = cv2.resize(tissue.pen.astype(np.uint8), (img.shape[1], img.shape[0]),
                         interpolation=cv2.INTER_NEAREST).astype(bool)
        img[pen] = (0.5 * img[pen] + 0.5 * np.array(PEN_BGR)).astype(np.uint8)
    line = max(1, round(max(img.shape[:2]) / 700))
    for contours, colour in ((tissue.contours, TISSUE_BGR), (tissue.holes, HOLE_BGR)):
        scaled = [np.round(c.astype(np.float64) * scale).astype(np.int32) for c in contours]
        if scaled:
            cv2.drawContours(img, scaled, -1, colour, line)
    side = size / thumb_ds
    for x, y in coords:
        p0 = (round(x / thumb_ds), round(y / thumb_ds))
        p1 = (round(x / thumb_ds + side) - 1, round(y / thumb_ds + side) - 1)
        cv2.rectangle(img, p0, p1, TILE_BGR, 1)
    return img


def write_png(path: str | Path, bgr: np.ndarray) -> None:
    """Write a BGR image as PNG atomically (OpenCV's encoder; deterministic bytes)."""
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed for an image of shape {bgr.shape}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
