"""Tissue segmentation of a low-resolution slide image: three tissue models (``tile.tissue_model``).

``regions`` (default): tissue as pathologists and CLAM see it, as regions. Foreground = saturation/OD
tissue (below) plus adipose recognised by its membrane texture (:mod:`histcode.slides.adipose`); grey
objects (bubble rims, dust: optical density without stain colour) and ink are not tissue. Foreground
contours are filled, and a hole is cut only when it is large (``a_h``) **and** glass (no fat texture); a piece
inside a cut hole (the region inside an ink ring a pathologist drew) stays, as CLAM keeps it.

``otsu_od``: the previous HistCode mask (the recipe below with every hole above ``a_h`` cut); fat is lost.

``clam``: CLAM's ``segmentTissue`` (saturation median → Otsu or ``sthresh`` → close → contours, the
``max_n_holes`` largest holes above ``a_h``), no pen/OD/fat rules: with ``four_point``, ``area_units:
level0`` and ``grid_origin: contour`` it reproduces CLAM's tiles.

Saturation channel → median blur → threshold (Otsu, never below the fixed ``sthresh``) → morphological
close → contour filtering of small tissue pieces and holes. Because Otsu splits the saturation histogram
into two classes, on slides with pale, weakly saturated tissue next to strongly eosinophilic stroma it can
split tissue from tissue instead of tissue from glass; pixels clearly darker than the slide's own glass
(optical density above ``od_threshold``) are therefore tissue too. Ink (pen marks) and blank/black areas are
removed before thresholding and again from the final mask, so no tile lands on them.

The ink and fat detectors see structure at 8-32 µm/px (a marker stroke, an adipocyte lattice); when the
segmentation image is finer (``seg_level: clam`` on a small or 40x slide, a 40x ``target_mpp``) they run on
a copy shrunk to about ``DETECTOR_UM`` and their masks are scaled back, so nuclei never read as ink and
glass grain never as membranes; the saturation/OD tissue keeps the fine resolution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np

from histcode.slides.adipose import DENSITY_MIN, RING_PX, adipose_mask, glass_rgb, stain_od
from histcode.slides.config import TileConfig

# Pen ink in OpenCV HSV (H 0-179, S and V 0-255). H&E at low resolution sits at hue ~135-170 (purple to
# pink) with moderate saturation; inks are far more saturated, off that hue range, or neutral and dark.
PEN_RED_HUE = (7, 172)  # red ink: hue <= 7 or >= 172 (344-14 degrees) ...
PEN_RED_SAT = 110  # ... strongly saturated ...
PEN_RED_MARGIN = 60  # ... and well above the slide's median tissue saturation (heavy eosin is red too);
# a red component is ink only when it is bright or far more saturated still (_red_ink): heavily stained tumour
# reaches the red window too, but sits darker than the slide's tissue and just above the floor
PEN_RED_BRIGHT = 0.95  # 90th-percentile brightness / the slide's median tissue brightness: a marker crosses
# glass, fat or thin tissue, where it is brighter than stain (heavy stain 0.67-0.89, real markers >= 0.92)
PEN_RED_EXCESS = 40  # 90th-percentile saturation above the floor: ink is more saturated than any stain
# (heavy stain 4-31, real markers >= 120; benchmarks/results/red_ink_preregistration.txt)
PEN_RED_ANCHOR = 60.0  # TileConfig.red_ink_anchor's default: a slide carries red marker only when one of its light red
# components is saturated this far above the floor; otherwise its bright or saturated red is blood or heavy eosin.
# Slide maxima: red tissue <= 58.6 (real MSKCC blood), <= 58 (the generator's stain); real markers >= 70, a
# calibrated marker painted on real slides >= 66 (benchmarks/results/red_ink_anchor_preregistration.txt)
PEN_RED_DARK = 0.5  # a red component darker than this x the tissue brightness is violet-black ink, not a red marker
PEN_RED_GLASS = 0.2  # on a slide without such a stroke, light red is still ink where glass makes up this share of the
# 3-px ring around it: a marker crosses the glass, blood lies in a vessel (ring glass <= 0.04 for 95 % of it)
PEN_COLD_HUE = (35, 125)  # green, cyan and blue ink (70-250 degrees): no H&E stain is this hue
PEN_COLD_SAT = 60
PEN_BLACK_VALUE = 50  # near-black ink or debris: brightness below this, and (TileConfig.black_ink_ratio) below 0.4x
# the slide's median tissue brightness, so the stroma of a slide stained near-black is not ink (saturation could not
# tell the two apart: dark_stain_black_preregistration.txt; brightness relative to the slide's tissue can:
# black_ink_relative_preregistration.txt)
PEN_BLACK_RATIO = 0.4  # TileConfig.black_ink_ratio's default
PEN_NEUTRAL = (40, 120)  # grey/black ink on glass: saturation below 40 and brightness below 120
PEN_DARK_RATIO = 0.55  # ink over tissue: darker than this fraction of the median tissue brightness ...
# ... counts only where connected to certain ink (hysteresis), so dense but unmarked tissue (epidermis,
# lymphoid aggregates) is removed only where it touches ink. TileConfig.pen_dark_ratio; 0.70 also finds the
# lighter half of violet-black strokes on real slides, but takes more dense tissue touching ink
# (benchmarks/results/violet_ink_preregistration.txt).
PEN_DILATE = 3  # seg pixels: ink halos are less saturated than the ink itself
PEN_MIN_PX = 4  # seg pixels: smaller dark/red specks (nuclei clusters, blood) are not ink strokes
CLIPPED_MIN_SHARE = 0.01  # exact white on at least this share of the image is no glass colour (_clipped_white)
NEUTRAL_RATIO = 0.15  # chromatic / mean OD below this: grey (bubble rim, dust, shadow), not stain (H&E >= 0.3)
DETECTOR_UM = 8.0  # the ink and fat detectors are built for 8-32 µm/px; on a finer segmentation image (CLAM's
# level of a small or 40x slide, a 40x target) they run on a copy shrunk to about this scale. Measured on
# CMU-1 at 2-4 µm/px: the fat detector called 57-62 % of its glass fat; at 0.5 µm/px nuclei read as ink.


@dataclasses.dataclass(frozen=True)
class TissueMask:
    """Binary tissue mask at segmentation resolution plus what produced it.

    mask: (h, w) bool, True = tissue; ``downsample`` level-0 px per mask px; ``pen`` (h, w) bool ink mask;
    contours/holes: OpenCV contours (k, 1, 2) int32 in mask px of kept tissue pieces and cut holes;
    ``hole_owner[i]``: index into ``contours`` of the piece hole i belongs to; ``fat``: pixels recognised
    as adipose; ``artefact``: grey objects excluded (bubble rims, dust). The last three are for QC.
    """

    mask: np.ndarray
    downsample: float
    threshold: float
    pen: np.ndarray
    contours: list[np.ndarray]
    holes: list[np.ndarray]
    hole_owner: list[int] = dataclasses.field(default_factory=list)
    fat: np.ndarray | None = None
    artefact: np.ndarray | None = None

    @property
    def tissue_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0


def _detector_factor(seg_um: float) -> int:
    """Integer shrink that brings a segmentation image of ``seg_um`` µm/px to about ``DETECTOR_UM``."""
    return max(1, int(DETECTOR_UM / seg_um + 1e-6))


def _shrink(img: np.ndarray, f: int) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (-(-w // f), -(-h // f)), interpolation=cv2.INTER_AREA)


def _grow(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def _large(mask: np.ndarray) -> np.ndarray:
    """Connected components of at least ``PEN_MIN_PX`` pixels: (H, W) uint8 → bool."""
    if not mask.any():
        return mask.astype(bool)
    _n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= PEN_MIN_PX)
    return np.isin(labels, big[big > 0])


def _red_ink(red: np.ndarray, s: np.ndarray, v: np.ndarray, floor: float, tissue_v: float,
             anchor: float = PEN_RED_ANCHOR) -> np.ndarray:
    """The red components (>= ``PEN_MIN_PX``) that are ink: bright (``PEN_RED_BRIGHT``) or far above the
    saturation ``floor`` (``PEN_RED_EXCESS``); the others are heavily stained tissue. Smaller ones stay.

    ``anchor`` (> 0): a light red component (not darker than ``PEN_RED_DARK``) is ink only on a slide where one of
    them reaches ``floor + anchor``, or where it borders glass (``PEN_RED_GLASS``): blood and heavy eosin pass the
    tests above, but no stain is as saturated as a red marker's stroke (``PEN_RED_ANCHOR``), and blood lies inside
    tissue while a marker crosses the glass. 0: no such condition."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(red.astype(np.uint8), connectivity=8)
    stain, light, anchored = [], [], anchor <= 0
    for k in range(1, n):
        x, y, w, h, area = stats[k]
        if area < PEN_MIN_PX:
            continue
        sel = labels[y:y + h, x:x + w] == k
        p_v, p_s = np.percentile(v[y:y + h, x:x + w][sel], 90), np.percentile(s[y:y + h, x:x + w][sel], 90)
        is_light = p_v >= PEN_RED_DARK * tissue_v
        anchored = anchored or (is_light and p_s >= floor + anchor)
        if p_v < PEN_RED_BRIGHT * tissue_v and p_s < floor + PEN_RED_EXCESS:
            stain.append(k)
        elif is_light:
            light.append(k)
    if not anchored:
        stain += [k for k in light if _glass_share(labels, k, stats[k], s, v) < PEN_RED_GLASS]
    return red & ~np.isin(labels, stain) if stain else red


def _glass_share(labels: np.ndarray, k: int, stat: np.ndarray, s: np.ndarray, v: np.ndarray) -> float:
    """Share of glass (saturation < 20, brightness > 180) in the 3-px ring around component ``k``."""
    x, y, w, h = (int(c) for c in stat[:4])
    y0, x0, y1, x1 = max(0, y - 3), max(0, x - 3), y + h + 3, x + w + 3
    sel = labels[y0:y1, x0:x1] == k
    ring = cv2.dilate(sel.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~sel
    glass = (s[y0:y1, x0:x1] < 20) & (v[y0:y1, x0:x1] > 180)
    return float(glass[ring].mean()) if ring.any() else 0.0


def _stain_black(v: np.ndarray, black: np.ndarray, limit: float) -> np.ndarray:
    """The near-black components of ``black`` (at least one pixel) whose median brightness ``v`` is at least
    ``limit``: stain of a heavily stained slide, not ink."""
    from scipy import ndimage

    n, labels = cv2.connectedComponents(black.astype(np.uint8), connectivity=8)
    medians = np.asarray(ndimage.median(v, labels, index=np.arange(1, n)))
    return np.isin(labels, np.flatnonzero(medians >= limit) + 1)


def pen_mask(rgb: np.ndarray, blur: int = 0, dark_ratio: float = PEN_DARK_RATIO,
             black_ratio: float = PEN_BLACK_RATIO, red_anchor: float = PEN_RED_ANCHOR) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (H, W) bool: strongly saturated red, green/blue ink, grey/black marks.

    ``blur`` (odd px): median filter first, so fibre-scale colour (bright eosin strands resolved on small
    slides) is judged at the scale of an ink stroke. ``dark_ratio``: pixels darker than this fraction of the
    median tissue brightness join the ink they touch (``PEN_DARK_RATIO``). ``black_ratio`` (> 0): a near-black
    component is ink only when its median brightness is below this fraction of the median tissue brightness, so
    the stroma of a slide stained near-black is not taken for a marker (``PEN_BLACK_RATIO``; 0: every near-black
    component is ink). ``red_anchor`` (> 0): light red is ink only on a slide where some red component is saturated
    this far above the red floor (``PEN_RED_ANCHOR``; 0: no such condition).
    """
    if blur > 1:
        rgb = cv2.medianBlur(np.ascontiguousarray(rgb), blur)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    cold = (h >= PEN_COLD_HUE[0]) & (h <= PEN_COLD_HUE[1]) & (s >= PEN_COLD_SAT)
    grey = (s < PEN_NEUTRAL[0]) & (v < PEN_NEUTRAL[1])
    black = (v < PEN_BLACK_VALUE) & ~grey  # near-black and not grey: ink, or (black_ratio) a slide's dark stain
    neutral = grey | black
    stained = (s >= 20) & ~cold & ~neutral  # the slide's tissue (and any red ink)
    enough = stained.sum() >= 16
    sat_floor = max(PEN_RED_SAT, float(np.median(s[stained])) + PEN_RED_MARGIN) if enough else 255.0
    red = ((h <= PEN_RED_HUE[0]) | (h >= PEN_RED_HUE[1])) & (s >= sat_floor)
    if enough and red.any() and (stained & ~red).any():
        red = _red_ink(red, s, v, sat_floor, float(np.median(v[stained & ~red])), red_anchor)
    if enough and black_ratio > 0:  # only acts on a slide whose tissue is darker than PEN_BLACK_VALUE / black_ratio
        limit = black_ratio * float(np.median(v[stained]))
        if limit < PEN_BLACK_VALUE and black.any():
            neutral = neutral & ~_stain_black(v, black, limit)
    strong = _large((red | cold | neutral).astype(np.uint8))
    if not strong.any():
        return np.zeros(rgb.shape[:2], bool)
    dark = np.zeros_like(strong)
    if enough:  # a marker transmits far less light than the slide's stained tissue
        dark = v < dark_ratio * float(np.median(v[stained & ~strong]))
    _n, labels = cv2.connectedComponents((strong | dark).astype(np.uint8), connectivity=8)
    pen = np.isin(labels, np.unique(labels[strong])).astype(np.uint8)  # dark regions touching ink
    if PEN_DILATE > 0 and pen.any():
        pen = cv2.dilate(pen, np.ones((PEN_DILATE, PEN_DILATE), np.uint8))
    return pen.astype(bool)


def _ink(rgb: np.ndarray, blurred: np.ndarray, cfg: TileConfig, f: int) -> np.ndarray:
    """Pen mask of ``rgb`` (``blurred``: median-filtered), found at the detector's scale (``f``: shrink)."""
    if not cfg.exclude_pen:
        return np.zeros(rgb.shape[:2], bool)
    image = blurred
    if f > 1:
        image = _shrink(rgb, f)
        image = cv2.medianBlur(image, cfg.median_blur) if cfg.median_blur > 1 else image
    pen = pen_mask(image, dark_ratio=cfg.pen_dark_ratio, black_ratio=cfg.black_ink_ratio,
                   red_anchor=cfg.red_ink_anchor)
    return pen if f == 1 else _grow(pen, rgb.shape)


def optical_density(rgb: np.ndarray, excluded: np.ndarray, blur: int) -> np.ndarray:
    """(H, W, 3) uint8 → (H, W) mean log10 optical density relative to the slide's glass.

    Glass brightness is the 99th percentile per channel of the non-excluded pixels, so scanner white balance
    and background tint cancel; a slide without glass only yields small densities (saturation decides there).
    """
    if blur > 1:
        rgb = cv2.medianBlur(np.ascontiguousarray(rgb), blur)
    pixels = rgb[~excluded] if (~excluded).any() else rgb.reshape(-1, 3)
    glass = np.percentile(pixels.reshape(-1, 3), 99, axis=0).astype(np.float32) + 1.0
    od = np.log10(glass / (rgb.astype(np.float32) + 1.0))
    return np.clip(od, 0.0, None).mean(axis=2)


def closing(binary: np.ndarray, k: int) -> np.ndarray:
    """Morphological closing with a k x k square that does not shift the mask.

    OpenCV's MORPH_CLOSE uses the same off-centre anchor for the dilation and the erosion when k is even
    (CLAM's close=4), which moves the mask by one pixel; eroding with the reflected anchor is the
    textbook closing.
    """
    kernel = np.ones((k, k), np.uint8)
    a, b = k // 2, k - 1 - k // 2
    padded = cv2.copyMakeBorder(binary, k, k, k, k, cv2.BORDER_CONSTANT, value=0)  # glass beyond the edge
    grown = cv2.dilate(padded, kernel, anchor=(a, a))
    return cv2.erode(grown, kernel, anchor=(b, b))[k:-k, k:-k]


def _filter_contours(binary: np.ndarray, min_tissue_px: float, min_hole_px: float, max_n_holes: int,
                     is_glass: Callable[[np.ndarray], bool] | None = None
                     ) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """CLAM's contour filter: keep tissue pieces whose area net of holes exceeds ``min_tissue_px`` and,
    inside them, the ``max_n_holes`` largest holes bigger than ``min_hole_px`` (and, with ``is_glass``,
    only holes it calls glass; the area net of holes then counts only those). With ``is_glass``, a piece
    inside a cut hole of a kept piece is part of the same section (tissue a pathologist circled in ink: the
    ring is not foreground, so ring and region become one hole) and needs only ``min_hole_px``. Returns
    (pieces, holes, index of each hole's piece)."""
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return [], [], []
    hier = hierarchy[0]  # (n, 4): next, previous, first child, parent
    tissue: list[np.ndarray] = []
    holes: list[np.ndarray] = []
    owner: list[int] = []
    small: list[tuple[int, list[int]]] = []  # pieces below min_tissue_px: (contour, its cut holes)

    def keep(i: int, own: list[int]) -> None:
        tissue.append(contours[i])
        holes.extend(contours[j] for j in own)
        owner.extend([len(tissue) - 1] * len(own))

    for i in np.flatnonzero(hier[:, 3] == -1):
        child_ids = np.flatnonzero(hier[:, 3] == i)
        hole_areas = [cv2.contourArea(contours[j]) for j in child_ids]
        order = np.argsort(hole_areas)[::-1][:max_n_holes]
        cut = [k for k in order if hole_areas[k] > min_hole_px]
        if is_glass is not None:
            cut = [k for k in cut if is_glass(contours[child_ids[k]])]
            area = cv2.contourArea(contours[i]) - sum(hole_areas[k] for k in cut)
        else:
            area = cv2.contourArea(contours[i]) - sum(hole_areas)
        own = [int(child_ids[k]) for k in cut]
        if area > 0 and area > min_tissue_px:
            keep(i, own)
        elif is_glass is not None and area > min_hole_px:
            small.append((i, own))
    cut_holes = list(holes)
    for i, own in small:  # islands: pieces inside a cut hole of a kept piece
        x, y = (float(v) for v in contours[i][0, 0])
        if any(cv2.pointPolygonTest(h, (x, y), False) > 0 for h in cut_holes):
            keep(i, own)
    return tissue, holes, owner


def _saturation(rgb: np.ndarray, cfg: TileConfig, excluded: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Median-blurred saturation (excluded pixels zeroed) and its threshold: Otsu, never below
    ``sthresh`` (a blank slide's noise never becomes tissue)."""
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    if excluded is not None:
        sat = np.where(excluded, 0, sat).astype(np.uint8)
    if cfg.median_blur > 1:
        sat = cv2.medianBlur(sat, cfg.median_blur)
    threshold = float(cfg.sthresh)
    if cfg.use_otsu and sat.max() > sat.min():
        otsu, _ = cv2.threshold(sat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        threshold = max(float(otsu), float(cfg.sthresh))
    return sat, threshold


def _draw(shape: tuple[int, int], tissue: list[np.ndarray], holes: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    if tissue:
        cv2.drawContours(out, tissue, -1, 1, thickness=cv2.FILLED)
    if holes:
        cv2.drawContours(out, holes, -1, 0, thickness=cv2.FILLED)
    return out.astype(bool)


def _draw_nested(shape: tuple[int, int], tissue: list[np.ndarray], holes: list[np.ndarray],
                 owner: list[int]) -> np.ndarray:
    """Each piece with its own holes, largest outline first, so a piece inside another's hole (an island)
    is drawn after that hole instead of erased by it."""
    out = np.zeros(shape, np.uint8)
    by_piece: dict[int, list[np.ndarray]] = {}
    for h, k in zip(holes, owner, strict=True):
        by_piece.setdefault(k, []).append(h)
    for k in sorted(range(len(tissue)), key=lambda k: -cv2.contourArea(tissue[k])):
        cv2.drawContours(out, tissue, k, 1, thickness=cv2.FILLED)
        if k in by_piece:
            cv2.drawContours(out, by_piece[k], -1, 0, thickness=cv2.FILLED)
    return out.astype(bool)


def segment_tissue(rgb: np.ndarray, downsample: float, cfg: TileConfig, *, area_unit_px: float,
                   seg_um: float | None = None, unknown: np.ndarray | None = None) -> TissueMask:
    """Tissue mask of a low-resolution RGB image of the slide.

    rgb: (H, W, 3) uint8 at ``downsample`` level-0 px per pixel; area_unit_px: level-0 pixels of one
    area unit (a 512x512 tile at the target resolution), used to scale ``a_t``/``a_h`` to mask pixels;
    seg_um: µm per pixel of ``rgb`` (default: from the area unit, which spans 512 px at ``target_mpp``);
    unknown: (H, W) bool pixels the slide file has no image for (never scanned, or damaged tiles the caller
    inpainted), kept out of every slide-wide statistic (glass colour, saturation threshold, the fat detector's
    noise level) and never read as fat texture.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"segment_tissue expects (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if seg_um is None:
        seg_um = downsample * cfg.target_mpp * 512.0 / float(np.sqrt(area_unit_px))
    unit = area_unit_px / (downsample * downsample)  # mask pixels per area unit
    cap = cfg.area_slide_frac * rgb.shape[0] * rgb.shape[1]  # small slides: limits relative to the slide
    min_t, min_h = min(cfg.a_t * unit, cap), min(cfg.a_h * unit, cap)
    if cfg.tissue_model == "clam":
        return _segment_clam(rgb, downsample, cfg, min_t, min_h)
    blurred = cv2.medianBlur(rgb, cfg.median_blur) if cfg.median_blur > 1 else rgb
    f = _detector_factor(seg_um)
    pen = _ink(rgb, blurred, cfg, f)
    r, g, b = cv2.split(rgb)
    lowest = cv2.min(cv2.min(r, g), b)
    blank = lowest >= cfg.white_value  # glass / empty background
    excluded = pen | blank
    sat, threshold = _saturation(rgb, cfg, excluded if unknown is None else excluded | unknown)
    if cfg.tissue_model == "otsu_od":
        binary = (sat > threshold) | (optical_density(rgb, excluded, cfg.median_blur) > cfg.od_threshold)
        binary = (binary & ~excluded).astype(np.uint8)
        if cfg.close > 0:
            binary = closing(binary, cfg.close)
        tissue, holes, owner = _filter_contours(binary, min_t, min_h, cfg.max_n_holes)
        mask = _draw(binary.shape, tissue, holes) & ~pen
        return TissueMask(mask=mask, downsample=float(downsample), threshold=threshold, pen=pen,
                          contours=tissue, holes=holes, hole_owner=owner)
    return _segment_regions(rgb, blurred, downsample, cfg, sat, threshold, pen, excluded, min_t, min_h, seg_um, f,
                            np.zeros(rgb.shape[:2], bool) if unknown is None else unknown, _clipped_white(lowest))


def _clipped_white(lowest: np.ndarray) -> np.ndarray:
    """Pixels exactly white (``lowest``, the per-pixel minimum over RGB, is 255) when they are at least
    ``CLIPPED_MIN_SHARE`` of the image, else none. Such white is no glass colour: an opaque file's unscanned area
    or padding (e.g. converted from MIRAX with a white background), or glass clipped by the scanner. Left in, it
    set the glass colour to 255 and the fat detector's noise level to 0, and the noise of the real glass read as
    fat: the real DICOM test slide with a white band beside it went from 323 to 513 tiles. A few white pixels
    (specular highlights) change neither."""
    white = lowest == 255
    return white if white.mean() >= CLIPPED_MIN_SHARE else np.zeros_like(white)


def _segment_regions(rgb: np.ndarray, blurred: np.ndarray, downsample: float, cfg: TileConfig, sat: np.ndarray,
                     threshold: float, pen: np.ndarray, excluded: np.ndarray, min_t: float, min_h: float,
                     seg_um: float, f: int, unknown: np.ndarray, clipped: np.ndarray) -> TissueMask:
    """The ``regions`` model (module docstring); ``blurred``: ``rgb`` median-filtered by ``median_blur``;
    ``f``: the detectors' shrink (:func:`_detector_factor`); ``unknown``: see :func:`segment_tissue`; ``clipped``:
    :func:`_clipped_white`."""
    glass = glass_rgb(rgb, pen | unknown | clipped)  # from everything but ink: glass is the brightest
    od_b, chroma_b = stain_od(blurred, glass)
    stained = chroma_b >= NEUTRAL_RATIO * od_b
    od_tissue = od_b > cfg.od_threshold
    saturated = sat > threshold
    artefact = od_tissue & ~stained & ~saturated & ~pen  # grey: bubble rims, dust, folds' shadows
    dense = (saturated | (od_tissue & stained)) & ~excluded
    known_dense = dense | pen | artefact | unknown  # the fat detector looks for texture in the rest only
    if f == 1:
        od, chroma = stain_od(rgb, glass) if blurred is not rgb else (od_b, chroma_b)
        fat, textured = adipose_mask(od, chroma, known_dense, seg_um, clipped)
    else:  # on a copy at the detector's scale; a shrunk pixel touching tissue or ink counts as such
        od, chroma = stain_od(_shrink(rgb, f), glass)
        near = _shrink(known_dense.astype(np.float32), f) > 0
        white = _shrink(clipped.astype(np.float32), f) >= 0.5
        fat, textured = (_grow(m, rgb.shape) for m in adipose_mask(od, chroma, near, seg_um * f, white))
    fat &= ~pen
    binary = (dense | fat).astype(np.uint8)
    if cfg.close > 0:
        binary = closing(binary, cfg.close)
    glass_level = 0.5 * float(DENSITY_MIN)

    def is_glass(hole: np.ndarray) -> bool:
        x, y, w, h = cv2.boundingRect(hole)
        inside = np.zeros((h, w), np.uint8)
        cv2.drawContours(inside, [hole - np.array([x, y])], -1, 1, thickness=cv2.FILLED)
        core = cv2.erode(inside, np.ones((RING_PX, RING_PX), np.uint8))  # the hole's rim is tissue's edge
        sel = (core if core.any() else inside).astype(bool)
        share = float(textured[y:y + h, x:x + w][sel].mean())
        return share < glass_level

    tissue, holes, owner = _filter_contours(binary, min_t, min_h, cfg.max_n_holes, is_glass)
    mask = _draw_nested(binary.shape, tissue, holes, owner) & ~pen & ~artefact
    return TissueMask(mask=mask, downsample=float(downsample), threshold=threshold, pen=pen, contours=tissue,
                      holes=holes, hole_owner=owner, fat=fat & mask & ~dense, artefact=artefact)


def _segment_clam(rgb: np.ndarray, downsample: float, cfg: TileConfig, min_t: float,
                  min_h: float) -> TissueMask:
    """CLAM's ``WholeSlideImage.segmentTissue`` (its MORPH_CLOSE anchor included), with the ``sthresh``
    floor under Otsu so a blank slide stays empty."""
    sat, threshold = _saturation(rgb, cfg)
    binary = (sat > threshold).astype(np.uint8)
    if cfg.close > 0:
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((cfg.close, cfg.close), np.uint8))
    tissue, holes, owner = _filter_contours(binary, min_t, min_h, cfg.max_n_holes)
    pen = np.zeros(binary.shape, bool)
    return TissueMask(mask=_draw(binary.shape, tissue, holes), downsample=float(downsample),
                      threshold=threshold, pen=pen, contours=tissue, holes=holes, hole_owner=owner)
