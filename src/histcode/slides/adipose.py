"""Adipose (fat) at the segmentation level: tissue that saturation and optical density do not see.

An adipocyte is an empty cell 50–150 µm across outlined by a 1–2 µm eosin membrane, so a fat lobule at
8–32 µm/px is nearly as bright as glass. What it has and glass has not is *structure*: the membranes make a
lattice of faint, stained (chromatic) lines, while glass is flat and artefacts on it (bubble rims, dust) are
neutral grey. The detector therefore measures, per segmentation pixel, the local contrast of the chromatic
optical density (max − min over RGB of the OD relative to the slide's glass), and calls fat where such
faint structure is dense over about two adipocytes (``WINDOW_UM``). Measured on the synthetic generator's
fat (dev seed 101): the contrast is 0.008–0.04 OD in fat and ≤ 0.002 on glass, at 8 and 32 µm/px.
Thin membranes averaged into an 8 µm pixel can darken all channels alike, leaving almost no chromatic
contrast (dev seeds 101/2323: median 0.001 in such fat, against 0.012–0.048 of mean-OD contrast; glass 90th
percentile 0.002–0.004), so a mean-OD *ridge* counts too (a line darker than both its sides, negative
Laplacian >= ``RIDGE_MIN_OD``) where the line keeps a trace of stain colour (``STAINED_RATIO``; grey bubble
rims and dust have none). A ridge, not the range: a smooth grey gradient (a real scan's shaded edge band)
has range but no ridge.
"""

from __future__ import annotations

import cv2
import numpy as np

TEXTURE_MIN_OD = 0.005  # chromatic OD contrast counted as a membrane (~3 grey levels on bright glass) ...
TEXTURE_NOISE_K = 3.0  # ... or this many times the glass's own contrast, if the scan is noisier
FAINT_MAX_OD = 0.1  # faint structure only: denser pixels are already tissue by the saturation/OD rules
WINDOW_UM = 160.0  # density window: about two adipocytes
DENSITY_MIN = 0.3  # share of textured pixels in the window that makes it fat
LATTICE_MIN_PX = 25  # textured components smaller than this are specks, not a membrane lattice
RIDGE_MIN_OD = 0.01  # mean-OD ridge (negative Laplacian) of a membrane line; a smooth gradient has none
STAINED_RATIO = 0.05  # chromatic / mean OD of a faintly stained line (grey bubble rims, dust: ~0)
RING_PX = 5  # textured pixels this close (5x5) to tissue or ink are its ragged border, not membranes
OUTLINE_UM = 120.0  # closing scale of the lattice's outline: one adipocyte (50-150 µm) ...
REACH_UM = 50.0  # ... which may extend a fat core by at most ~half an adipocyte (measured: more keeps the
# blurred rim of a real out-of-focus scan, the DICOM test slide)


def glass_rgb(rgb: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """The slide's glass brightness: the 99th percentile per channel of the pixels not ``excluded``
    (histogram-based, uint8)."""
    pixels = rgb[~excluded] if (~excluded).any() else rgb.reshape(-1, 3)
    out = np.empty(3, np.float32)
    for c in range(3):
        cdf = np.cumsum(np.bincount(pixels[:, c], minlength=256))
        out[c] = float(np.searchsorted(cdf, 0.99 * cdf[-1]))
    return out


def stain_od(rgb: np.ndarray, glass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean OD, chromatic OD) per pixel relative to ``glass`` (:func:`glass_rgb`). Chromatic OD (max − min
    over channels) is ~0 for grey objects."""
    lut = np.clip(np.log10((glass[None, :] + 1.0) / (np.arange(256, dtype=np.float32)[:, None] + 1.0)), 0, None)
    r, g, b = (np.ascontiguousarray(lut[:, c])[ch] for c, ch in enumerate(cv2.split(rgb)))
    return (r + g + b) * np.float32(1 / 3), np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)


def window_px(seg_um: float) -> int:
    """Odd side of the density window in segmentation pixels (at least 3)."""
    w = max(3, round(WINDOW_UM / seg_um))
    return w + 1 - w % 2


def adipose_mask(od: np.ndarray, chroma: np.ndarray, dense: np.ndarray, seg_um: float,
                 clipped: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fat, textured): fat as (H, W) bool and the textured pixels (faint stained structure) whose density
    over ``WINDOW_UM`` it thresholds.

    od/chroma: from :func:`stain_od`; dense: pixels already tissue (or excluded), whose borders with glass
    would otherwise read as structure; seg_um: µm per pixel; clipped: pixels to leave out of the glass's noise
    level (white clipped at 255 has none to show, and a large white area would set the level to 0, so the noise
    of the real glass read as texture and glass as fat).
    """
    k3 = np.ones((3, 3), np.uint8)
    chroma_max = cv2.dilate(chroma, k3)
    contrast = chroma_max - cv2.erode(chroma, k3)
    stained = chroma_max >= STAINED_RATIO * cv2.dilate(od, k3)  # the line keeps stain colour
    ridge = -cv2.Laplacian(od, cv2.CV_32F, ksize=1)  # a thin line is darker than both its sides
    ridge = cv2.dilate(np.where(ridge >= RIDGE_MIN_OD, ridge, 0), k3)  # ... spread over its 3x3, as contrast is
    contrast = np.maximum(contrast, np.where(stained, ridge, 0))
    near_dense = cv2.dilate(dense.astype(np.uint8), np.ones((RING_PX, RING_PX), np.uint8)).astype(bool)
    flat = ~near_dense & (od < FAINT_MAX_OD)
    quiet = flat if clipped is None else flat & ~clipped
    noise = float(np.percentile(contrast[quiet], 10)) if quiet.sum() >= 16 else 0.0
    textured = flat & (contrast > max(TEXTURE_MIN_OD, TEXTURE_NOISE_K * noise))
    if textured.any():  # membranes form a connected lattice; isolated specks (nuclei, debris) do not
        _n, labels, stats, _ = cv2.connectedComponentsWithStats(textured.astype(np.uint8), connectivity=8)
        textured = (stats[:, cv2.CC_STAT_AREA] >= LATTICE_MIN_PX)[labels] & textured
    w = window_px(seg_um)
    density = cv2.blur(textured.astype(np.float32), (w, w), borderType=cv2.BORDER_REFLECT)
    core = density >= DENSITY_MIN
    if not core.any():
        return core, textured
    # The window blurs the lattice's outline both ways: it dilutes fat within half a window of glass (fat at
    # the edges of sections was lost; at the slide's border the window is mirrored, not padded with glass)
    # and spills past the last membrane. The outline is therefore the lattice (with the tissue it adjoins)
    # closed at adipocyte scale, less the pixel the 3x3 contrast adds outside each membrane, taken near a
    # fat core.
    k = max(3, round(OUTLINE_UM / seg_um))
    k += 1 - k % 2
    outline = cv2.morphologyEx((textured | dense).astype(np.uint8), cv2.MORPH_CLOSE,
                               cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    outline = cv2.erode(outline, k3).astype(bool) | dense
    r = max(3, round(REACH_UM / seg_um))
    r += 1 - r % 2
    reach = cv2.dilate(core.astype(np.uint8), np.ones((r, r), np.uint8)).astype(bool)
    return reach & outline & ~dense, textured
