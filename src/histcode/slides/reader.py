"""Whole-slide reader over OpenSlide: resolution (µm/px), pyramid levels and best-level tile reads.

Every bad-input case (missing file, unsupported or truncated file, unresolvable resolution, reads out of
bounds) raises ``SlideError`` naming the slide and the fix, so cohort runs can record it and go on.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import TracebackType

import numpy as np

from histcode.errors import HistcodeError
from histcode.io.manifest import valid_mpp
from histcode.slides.stored_tiles import StoredTiles, stored_tiles, tile_sized

# µm/px of a 1x objective; objective power P gives about 10/P µm/px (20x ≈ 0.5, 40x ≈ 0.25).
MPP_AT_1X = 10.0
# Largest level (in pixels) read whole by ``read_level``; bigger reads go through ``read_downsampled``.
MAX_LEVEL_PIXELS = 120_000_000
_STRIP = 2048  # level pixels per strip side when downscaling big levels (2048: thumbnail of a 100k slide < 300 MB)
# Share of a slide's level-0 area that may be unreadable at every level before a whole-slide read gives up: one
# damaged JPEG tile of a TCGA SVS costs far less (a 240-px tile of a 100k x 80k slide is 7e-6 of it).
MAX_UNREADABLE = 0.05
_DEFAULT_TILE_PX = 256  # salvage block side when a level does not report its tile size


class SlideError(HistcodeError):
    """A slide cannot be opened, resolved or read; the message names the file and the fix."""


def _sniff(path: Path) -> str | None:
    """The container a file claims to be from its magic bytes (TIFF/BigTIFF, DICOM), or None."""
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[128:132] == b"DICM":
        return "DICOM"
    return None


def _rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """Composite OpenSlide's (non-premultiplied) RGBA on white: (H, W, 4) uint8 → (H, W, 3) uint8.

    Transparent pixels are outside the scanned area (or beyond the slide bounds) and become white,
    which the tissue mask treats as background.
    """
    rgb = rgba[..., :3]
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[..., None].astype(np.uint16)
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


class SlideReader:
    """An open whole-slide image (any OpenSlide format); use as a context manager.

    Resolution order (DESIGN §3): ``openslide.mpp-x/y`` → ``openslide.objective-power`` → ``mpp_override``
    (the manifest's ``mpp`` column) → ``default_mpp`` (params) → ``SlideError``.
    """

    def __init__(self, path: str | Path, *, mpp_override: float | None = None,
                 default_mpp: float | None = None) -> None:
        import openslide

        self.path = Path(path)
        self._mpp_override = mpp_override
        self._default_mpp = default_mpp
        if not self.path.exists():
            raise SlideError(f"{self.path}: slide file not found; check the manifest path or the slide_dir.")
        if not self.path.is_file():
            raise SlideError(f"{self.path}: not a regular file (an .mrxs needs its data folder beside it, "
                             "but the manifest must point at the .mrxs file itself).")
        try:
            self._slide = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError as exc:
            kind = _sniff(self.path)
            if kind is not None:
                raise SlideError(f"{self.path}: looks like a {kind} file ({self.path.stat().st_size} bytes) but "
                                 f"OpenSlide cannot open it ({exc}): the file is corrupt or truncated; "
                                 "re-download it (check its md5 against the GDC manifest).") from exc
            raise SlideError(f"{self.path}: not a slide format OpenSlide can read ({exc}); remove it from the "
                             "cohort or convert it (e.g. to pyramidal TIFF).") from exc
        except (openslide.OpenSlideError, OSError) as exc:
            raise SlideError(f"{self.path}: slide file is corrupt or truncated ({exc}); re-download it "
                             "(check its md5 against the GDC manifest).") from exc
        self._mpp: float | None = None
        self._mpp_source: str | None = None
        # level-0 (x, y, w, h) of regions no pyramid level could decode, filled with white by whole-slide reads
        self.unreadable: list[tuple[int, int, int, int]] = []
        self.unreadable_cause = ""  # the decoder's message for the first of them
        self._stored: StoredTiles | bool | None = False  # False: not looked up yet

    # context manager -------------------------------------------------------------------------------
    def __enter__(self) -> SlideReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._slide.close()

    def _reopen_after(self, exc: BaseException) -> None:
        """After an OpenSlide error the handle is in an error state: every later read fails, so one corrupt JPEG
        tile (e.g. "Corrupt JPEG data: premature end of data segment" in some TCGA SVS files) would fail all the
        slide's remaining tiles. Reopening limits the loss to the regions that touch the bad tile."""
        import openslide

        if isinstance(exc, openslide.OpenSlideError):
            self._slide.close()
            try:
                self._slide = openslide.OpenSlide(str(self.path))
            except (openslide.OpenSlideError, OSError) as again:
                raise SlideError(f"{self.path}: cannot reopen the slide after a read error ({again}); re-download "
                                 "it.") from exc

    # metadata --------------------------------------------------------------------------------------
    @property
    def properties(self) -> dict[str, str]:
        return dict(self._slide.properties)

    @property
    def vendor(self) -> str:
        return str(self._slide.properties.get("openslide.vendor", "unknown"))

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels."""
        w, h = self._slide.dimensions
        return int(w), int(h)

    @property
    def level_count(self) -> int:
        return int(self._slide.level_count)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((int(w), int(h)) for w, h in self._slide.level_dimensions)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self._slide.level_downsamples)

    @property
    def mpp(self) -> float:
        """Level-0 µm per pixel, resolved in the DESIGN §3 order (raises ``SlideError`` if unresolvable)."""
        if self._mpp is None:
            self._mpp, self._mpp_source = self._resolve_mpp()
        return self._mpp

    @property
    def mpp_source(self) -> str:
        """Where ``mpp`` came from: ``openslide.mpp``, ``objective-power``, ``manifest`` or ``default_mpp``."""
        _ = self.mpp
        assert self._mpp_source is not None
        return self._mpp_source

    def _resolve_mpp(self) -> tuple[float, str]:
        props = self._slide.properties
        mx, my = valid_mpp(props.get("openslide.mpp-x")), valid_mpp(props.get("openslide.mpp-y"))
        if mx is not None or my is not None:
            vals = [v for v in (mx, my) if v is not None]
            return float(sum(vals) / len(vals)), "openslide.mpp"
        power = valid_mpp(props.get("openslide.objective-power"))
        if power is not None:
            return MPP_AT_1X / power, "objective-power"
        override = valid_mpp(self._mpp_override)
        if override is not None:
            return override, "manifest"
        default = valid_mpp(self._default_mpp)
        if default is not None:
            return default, "default_mpp"
        raise SlideError(
            f"{self.path}: resolution unknown (no openslide.mpp-x/y and no openslide.objective-power in the "
            "file); fix: fill the 'mpp' column for this slide in the cohort manifest, or set "
            "'default_mpp' for the cohort in params.yaml (base.cohorts.<name>.default_mpp)."
        )

    # reads -----------------------------------------------------------------------------------------
    def best_level(self, downsample: float) -> int:
        """Coarsest level whose downsample does not exceed ``downsample`` (0.1% tolerance for rounding)."""
        best = 0
        for i, d in enumerate(self.level_downsamples):
            if d <= downsample * 1.001:
                best = i
        return best

    def _read_rgb(self, x: int, y: int, level: int, w: int, h: int) -> np.ndarray:
        """(h, w, 3) uint8 RGB of a region, composited on white where OpenSlide reports transparency."""
        return self._read_rgba(x, y, level, w, h)[0]

    def _read_rgba(self, x: int, y: int, level: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(RGB composited on white, (h, w) bool of the fully transparent pixels or None when the region is opaque).

        A tile-sized region of a JPEG TIFF is decoded from its stored tiles' bytes (``stored_tiles``: OpenSlide's
        pixels, a damaged tile read by OpenSlide, 4-6x cheaper in benchmarks/bench_tile_reads.py); every other
        region is OpenSlide's."""
        if self._stored is False and tile_sized(self._slide.properties, level, w, h):
            self._stored = stored_tiles(self.path, self._slide.properties, self.level_dimensions)
        if isinstance(self._stored, StoredTiles):
            rgb = self._stored.read(x, y, level, self.level_downsamples[level], w, h,
                                    lambda: self._openslide_rgb_opaque(x, y, level, w, h))
            if rgb is not None:
                return rgb, None
        return self._openslide_rgba(x, y, level, w, h)

    def _openslide_rgb_opaque(self, x: int, y: int, level: int, w: int, h: int) -> np.ndarray | None:
        """OpenSlide's RGB of the region, or None when part of it is transparent."""
        rgb, clear = self._openslide_rgba(x, y, level, w, h)
        return rgb if clear is None else None

    def _openslide_rgba(self, x: int, y: int, level: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``_read_rgba`` through OpenSlide.

        Transparent pixels were never scanned (MIRAX, Leica SCN and sparse DICOM leave what lies outside the scanned
        areas transparent). Opaque regions (the usual case) drop alpha in Pillow's C code, 3x faster than a numpy
        copy and, unlike OpenCV's threaded conversion, safe in forked DataLoader workers (OpenCV's thread pool
        deadlocks after a fork once the parent has used it)."""
        try:
            region = self._slide.read_region((int(x), int(y)), int(level), (int(w), int(h)))
        except Exception as exc:  # OpenSlideError on corrupt tiles, MemoryError, decoder errors
            self._reopen_after(exc)
            raise SlideError(f"{self.path}: reading region x={x} y={y} level={level} size={w}x{h} failed "
                             f"({type(exc).__name__}: {exc}); the file is probably corrupt or truncated; "
                             "re-download it.") from exc
        if region.mode == "RGBA" and region.getextrema()[3][0] == 255:
            return np.array(region.convert("RGB")), None  # a writable copy, as callers expect
        rgba = np.asarray(region)
        clear = rgba[..., 3] == 0
        return _rgba_to_rgb(rgba), (clear if clear.any() else None)

    def _read_salvaged(self, x: int, y: int, level: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``_read_rgba`` for whole-slide reads that survives damaged tiles: when the region fails, it is re-read
        block by block on the level's own tile grid, a failed block is taken from the nearest other pyramid level
        (each level is compressed separately), and a block no level can decode is filled with white and recorded in
        ``unreadable``. Returns (RGB, no-data mask: transparent or unreadable pixels, or None when there are none).
        Gives up (``SlideError``) once more than ``MAX_UNREADABLE`` of the slide is lost."""
        try:
            return self._read_rgba(x, y, level, w, h)
        except SlideError as exc:
            first = exc
        ds = self.level_downsamples[level]
        props = self._slide.properties
        tw = int(props.get(f"openslide.level[{level}].tile-width") or _DEFAULT_TILE_PX)
        th = int(props.get(f"openslide.level[{level}].tile-height") or _DEFAULT_TILE_PX)
        lx0, ly0 = round(x / ds), round(y / ds)
        out = np.full((h, w, 3), 255, np.uint8)
        nodata = np.zeros((h, w), bool)
        for by in range(ly0 - ly0 % th, ly0 + h, th):
            for bx in range(lx0 - lx0 % tw, lx0 + w, tw):
                x0, y0 = max(bx, lx0), max(by, ly0)
                bw, bh = min(bx + tw, lx0 + w) - x0, min(by + th, ly0 + h) - y0
                where = np.s_[y0 - ly0:y0 - ly0 + bh, x0 - lx0:x0 - lx0 + bw]
                block = self._block_from_any_level(level, x0, y0, bw, bh)
                if block is not None:
                    out[where], clear = block
                    if clear is not None:
                        nodata[where] = clear
                    continue
                nodata[where] = True
                rect = (round(x0 * ds), round(y0 * ds), math.ceil(bw * ds), math.ceil(bh * ds))
                if rect not in self.unreadable:  # a second whole-slide read (a thumbnail after the mask) meets it again
                    self.unreadable.append(rect)
                cause = first.__cause__
                self.unreadable_cause = self.unreadable_cause or f"{type(cause).__name__}: {cause}"
                lost = sum(r[2] * r[3] for r in self.unreadable) / (self.dimensions[0] * self.dimensions[1])
                if lost > MAX_UNREADABLE:
                    raise SlideError(f"{self.path}: reading region x={x} y={y} level={level} size={w}x{h} failed and "
                                     f"{lost:.0%} of the slide is unreadable at every pyramid level, more than the "
                                     f"{MAX_UNREADABLE:.0%} a slide may lose ({type(cause).__name__}: {cause}); the "
                                     "file is corrupt or truncated; re-download it.") from first
        return out, (nodata if nodata.any() else None)

    def _block_from_any_level(self, level: int, lx: int, ly: int, bw: int,
                              bh: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Level ``level`` block (lx, ly, bw, bh) in that level's px, read from ``level`` or, failing that, from the
        other levels nearest in scale (resized), as ``_read_rgba`` gives it, or None when none can decode it."""
        import cv2

        ds = self.level_downsamples[level]
        others = sorted((i for i in range(self.level_count) if i != level),
                        key=lambda i: (abs(math.log(self.level_downsamples[i] / ds)), -i))
        for i in (level, *others):
            f = ds / self.level_downsamples[i]
            try:
                rgb, clear = self._read_rgba(round(lx * ds), round(ly * ds), i, max(1, round(bw * f)),
                                             max(1, round(bh * f)))
            except SlideError:
                continue
            if rgb.shape[:2] != (bh, bw):
                rgb = cv2.resize(rgb, (bw, bh), interpolation=cv2.INTER_AREA if f > 1 else cv2.INTER_LINEAR)
                if clear is not None:
                    clear = cv2.resize(clear.astype(np.uint8), (bw, bh), interpolation=cv2.INTER_NEAREST) > 0
            return rgb, clear
        return None

    def read_tile(self, x: int, y: int, size_level0: int, out_px: int) -> np.ndarray:
        """Read the level-0 square (x, y, size_level0) as (out_px, out_px, 3) uint8 RGB.

        Reads from the coarsest level that still has at least ``out_px`` pixels across the square, then
        resizes (area interpolation when shrinking), so a 40x slide's 512 level-0 px come back as 256.
        """
        if size_level0 <= 0 or out_px <= 0:
            raise SlideError(f"{self.path}: read_tile needs positive sizes, got size_level0={size_level0}, "
                             f"out_px={out_px}.")
        w0, h0 = self.dimensions
        if x >= w0 or y >= h0 or x + size_level0 <= 0 or y + size_level0 <= 0:
            raise SlideError(f"{self.path}: tile ({x}, {y}, {size_level0}) lies outside the slide "
                             f"({w0}x{h0}); check the coords file belongs to this slide.")
        level = self.best_level(size_level0 / out_px)
        ds = self.level_downsamples[level]
        side = max(1, round(size_level0 / ds))
        rgb = self._read_rgb(x, y, level, side, side)
        if side != out_px:
            import cv2

            interp = cv2.INTER_AREA if side > out_px else cv2.INTER_LINEAR
            rgb = cv2.resize(rgb, (out_px, out_px), interpolation=interp)
        return rgb

    def read_level(self, level: int) -> np.ndarray:
        """A whole low-resolution level as (H, W, 3) uint8 RGB (refuses levels over ~120 Mpx); damaged tiles are
        salvaged from other levels or left white and recorded in ``unreadable`` (see ``_read_salvaged``)."""
        return self._read_level(level)[0]

    def _read_level(self, level: int) -> tuple[np.ndarray, np.ndarray | None]:
        if not 0 <= level < self.level_count:
            raise SlideError(f"{self.path}: level {level} does not exist (level_count={self.level_count}).")
        w, h = self.level_dimensions[level]
        if w * h > MAX_LEVEL_PIXELS:
            raise SlideError(f"{self.path}: level {level} is {w}x{h} px, too large to read whole; use "
                             "read_downsampled() or a lower-resolution level.")
        return self._read_salvaged(0, 0, level, w, h)

    def read_downsampled(self, downsample: float) -> tuple[np.ndarray, float]:
        """The whole slide at about ``downsample`` x: ((H, W, 3) uint8 RGB, exact downsample used).

        Uses the closest level at or below ``downsample`` and shrinks it further by an integer factor in
        strips, so memory stays bounded and no OpenCV call ever sees an image over 65,500 px (works on
        single-level slides of any size). The exact downsample is ``level_downsample * factor``.
        """
        rgb, used, _nodata = self.read_downsampled_masked(downsample)
        return rgb, used

    def read_downsampled_masked(self, downsample: float) -> tuple[np.ndarray, float, np.ndarray | None]:
        """``read_downsampled`` plus the (H, W) bool mask of pixels with no image data, or None when every pixel has
        some: pixels at least half made of transparent (never scanned) or unreadable (``unreadable``) ones. They
        read as white, which is not the slide's glass; segmentation keeps them out of its slide-wide statistics."""
        import cv2

        level = self.best_level(downsample)
        lds = self.level_downsamples[level]
        factor = max(1, math.floor(downsample / lds + 1e-6))
        lw, lh = self.level_dimensions[level]
        if factor == 1 and lw * lh <= MAX_LEVEL_PIXELS:
            rgb, nodata = self._read_level(level)
            return rgb, lds, nodata
        ow, oh = -(-lw // factor), -(-lh // factor)
        out = np.full((oh, ow, 3), 255, np.uint8)
        share: np.ndarray | None = None  # no-data share of each output pixel, once any strip has some
        step = max(factor, (_STRIP // factor) * factor)  # level px per strip, a multiple of factor
        for ly in range(0, lh, step):
            for lx in range(0, lw, step):
                sw, sh = min(step, lw - lx), min(step, lh - ly)
                pw, ph = -(-sw // factor) * factor, -(-sh // factor) * factor
                x0, y0 = round(lx * lds), round(ly * lds)
                rgb, nodata = self._read_salvaged(x0, y0, level, sw, sh)
                if (pw, ph) != (sw, sh):  # pad the slide's edge with white to a whole number of blocks
                    padded = np.full((ph, pw, 3), 255, np.uint8)
                    padded[:sh, :sw] = rgb
                    rgb = padded
                small = cv2.resize(rgb, (pw // factor, ph // factor), interpolation=cv2.INTER_AREA)
                oy, ox = ly // factor, lx // factor
                out[oy:oy + small.shape[0], ox:ox + small.shape[1]] = small
                if nodata is not None:
                    share = np.zeros((oh, ow), np.float32) if share is None else share
                    full = np.zeros((ph, pw), np.float32)
                    full[:sh, :sw] = nodata
                    part = cv2.resize(full, (pw // factor, ph // factor), interpolation=cv2.INTER_AREA)
                    share[oy:oy + part.shape[0], ox:ox + part.shape[1]] = part
        return out, lds * factor, (None if share is None else share >= 0.5)

    def thumbnail(self, max_px: int) -> np.ndarray:
        """An RGB thumbnail whose longer side is at most ``max_px``: (H, W, 3) uint8."""
        w, h = self.dimensions
        ds = max(w, h) / max_px
        img, _used = self.read_downsampled(max(1.0, ds))
        if max(img.shape[:2]) > max_px:
            import cv2

            scale = max_px / max(img.shape[:2])
            size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        return img

    def __repr__(self) -> str:
        return f"SlideReader({str(self.path)!r}, vendor={self.vendor}, dims={self.dimensions})"
