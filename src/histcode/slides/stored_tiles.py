"""Tile-sized region reads of JPEG TIFF slides: OpenSlide checks each stored tile, tifffile hands over its pixels.

OpenSlide spends 1.3-1.8 ms on a 240-256 px region of a JPEG TIFF, but only ~0.25 ms of it decoding the tile: the
rest is painting the region (a cairo composite of premultiplied ARGB) and converting it back. Tile reads
(extraction, pretraining) are the loader's main cost, so they come here: OpenSlide reads one pixel of each stored
tile the region touches, which makes it decode that whole tile with its own decoder (its errors, its warnings
treated as errors, its cache), and tifffile + imagecodecs decode the same tile's bytes for the pixels (~0.3 ms):
a region inside one tile is that tile or a crop of it, a region across a few tiles (TCGA's 240-px SVS tiles under
a 256-px grid) is stitched from them. Decoded tiles that a read does not use whole are kept (``CACHE_BYTES``) for
the neighbouring reads.

Only such reads come here: generic TIFF and Aperio SVS, JPEG, RGB/YCbCr, 8-bit, integer downsample, region wholly
inside the level and over at most ``MAX_TILES`` tiles, every tile with bytes, opaque and decoded by OpenSlide
without complaint. The first read of each level in a process is compared pixel for pixel with OpenSlide's read of
the region; a level that differs goes back to OpenSlide for good. Anything else (a damaged tile above all) is read
by OpenSlide whole, so the pixels are always OpenSlide's and damaged tiles keep OpenSlide's errors and salvage
(imagecodecs alone decodes a damaged JPEG without a word).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

log = logging.getLogger(__name__)

VENDORS = ("generic-tiff", "aperio")  # OpenSlide formats whose levels are the TIFF's own tiled pages
MAX_TILES = 16  # a read over more stored tiles (a 512-px region of 240-px tiles spans up to 9) goes to OpenSlide
CACHE_BYTES = 32 << 20  # decoded tiles kept per process, all slides together
_JPEG, _RGB, _YCBCR, _CONTIG = 7, 2, 6, 1  # TIFF tag values
_CACHED_SLIDES = 64  # tile indexes kept per process (a few hundred kB each for a 100k-px slide)


@dataclass
class _Level:
    """One OpenSlide level's TIFF page: where its tiles lie and how to decode them."""

    tile_w: int
    tile_h: int
    width: int
    height: int
    across: int
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    jpegtables: bytes | None
    decode: Callable[..., Any]
    checked: bool = False  # compared with OpenSlide once in this process


class _TileCache:
    """LRU of decoded tiles by (file, its version, level, tile index), bounded in bytes; shared by the process's
    readers."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> np.ndarray | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, key: tuple[Any, ...], tile: np.ndarray) -> None:
        with self._lock:
            if key in self._tiles:
                return
            self._tiles[key] = tile
            self._bytes += tile.nbytes
            while self._bytes > self.max_bytes and len(self._tiles) > 1:
                self._bytes -= self._tiles.popitem(last=False)[1].nbytes


_CACHE = _TileCache(CACHE_BYTES)


@dataclass
class StoredTiles:
    """The JPEG tile index of one slide file (per process, see :func:`stored_tiles`)."""

    path: Path
    version: tuple[int, int]  # (mtime ns, size): a file replaced under the same path is another file
    file: BinaryIO  # opened with the index: the bytes read are the version indexed (closed when collected)
    levels: dict[int, _Level] = field(default_factory=dict)

    def read(self, x: int, y: int, level: int, downsample: float, w: int, h: int,
             openslide_rgb: Callable[[], np.ndarray | None],
             openslide_opaque: Callable[[int, int], bool]) -> np.ndarray | None:
        """(h, w, 3) uint8 RGB (writable) of the level-0 (x, y) region, or None when it does not qualify.

        ``openslide_opaque(x, y)`` reads the level's pixel at level-0 (x, y) with OpenSlide: False when it fails or is
        transparent. ``openslide_rgb`` reads the whole region with OpenSlide (None when it has transparent pixels);
        it is called once per level to check the decoder, and its pixels are returned on that first read."""
        lv = self.levels.get(level)
        ds = int(downsample)
        if lv is None or ds != downsample or x % ds or y % ds or w <= 0 or h <= 0:
            return None
        lx, ly = x // ds, y // ds
        if lx < 0 or ly < 0 or lx + w > lv.width or ly + h > lv.height:
            return None
        tx0, ty0 = lx // lv.tile_w, ly // lv.tile_h
        tx1, ty1 = (lx + w - 1) // lv.tile_w, (ly + h - 1) // lv.tile_h
        if (tx1 - tx0 + 1) * (ty1 - ty0 + 1) > MAX_TILES:
            return None
        checked = _Checked(openslide_opaque, ds)
        if (tx0, ty0) == (tx1, ty1) and (w, h) == (lv.tile_w, lv.tile_h):
            rgb = self._tile(level, lv, tx0, ty0, checked, keep=False)
        else:
            rgb = self._stitch(level, lv, lx, ly, w, h, (tx0, ty0, tx1, ty1), checked)
        if rgb is None:
            return None
        if not lv.checked:
            reference = openslide_rgb()
            if reference is None or not np.array_equal(reference, rgb):
                log.info("%s: level %d tiles decode differently from OpenSlide; reading them with OpenSlide",
                         self.path, level)
                del self.levels[level]
            else:
                lv.checked = True
            return reference
        return rgb

    def _stitch(self, level: int, lv: _Level, lx: int, ly: int, w: int, h: int,
                span: tuple[int, int, int, int], checked: _Checked) -> np.ndarray | None:
        """The level region (lx, ly, w, h) copied out of the stored tiles ``span`` (tx0, ty0, tx1, ty1) covers."""
        tx0, ty0, tx1, ty1 = span
        out = np.empty((h, w, 3), np.uint8)
        for ty in range(ty0, ty1 + 1):
            y0, y1 = max(ly, ty * lv.tile_h), min(ly + h, (ty + 1) * lv.tile_h)
            for tx in range(tx0, tx1 + 1):
                tile = self._tile(level, lv, tx, ty, checked, keep=True)
                if tile is None:
                    return None
                x0, x1 = max(lx, tx * lv.tile_w), min(lx + w, (tx + 1) * lv.tile_w)
                out[y0 - ly:y1 - ly, x0 - lx:x1 - lx] = tile[y0 - ty * lv.tile_h:y1 - ty * lv.tile_h,
                                                             x0 - tx * lv.tile_w:x1 - tx * lv.tile_w]
        return out

    def _tile(self, level: int, lv: _Level, tx: int, ty: int, checked: _Checked, *,
              keep: bool) -> np.ndarray | None:
        """Stored tile (tx, ty) of ``level`` decoded (tile_h, tile_w, 3), from the cache or kept in it when ``keep``;
        None when OpenSlide fails on it or finds it transparent, when it has no bytes, or when it does not decode."""
        index = ty * lv.across + tx
        key = (self.path, self.version, level, index)
        tile = _CACHE.get(key)
        if tile is not None:
            return tile if keep else tile.copy()
        # OpenSlide decodes whole tiles: its read of the tile's last pixel inside the level decodes all of it
        last_x, last_y = min((tx + 1) * lv.tile_w, lv.width) - 1, min((ty + 1) * lv.tile_h, lv.height) - 1
        if not lv.counts[index] or not checked(last_x, last_y):
            return None
        try:
            data = os.pread(self.file.fileno(), lv.counts[index], lv.offsets[index])
            tile = lv.decode(data, index, jpegtables=lv.jpegtables)[0][0]
        except Exception as exc:  # any decoder error: OpenSlide reads the region and reports it
            log.debug("%s: stored tile %d of level %d not decoded (%s); reading it with OpenSlide", self.path,
                      index, level, exc)
            return None
        if tile.shape != (lv.tile_h, lv.tile_w, 3):
            return None
        if keep:
            tile.flags.writeable = False  # shared through the cache
            _CACHE.put(key, tile)
        return tile


@dataclass
class _Checked:
    """OpenSlide's verdict on a level pixel given in level coordinates (``openslide_opaque`` takes level-0 ones)."""

    openslide_opaque: Callable[[int, int], bool]
    downsample: int

    def __call__(self, lx: int, ly: int) -> bool:
        return self.openslide_opaque(lx * self.downsample, ly * self.downsample)


def _level_page(pages: list[Any], width: int, height: int, tile_w: int, tile_h: int) -> Any | None:
    """The one tiled JPEG RGB page of this level's size and tile size, or None (none or ambiguous)."""
    found = [p for p in pages
             if p.is_tiled and (p.imagewidth, p.imagelength) == (width, height)
             and (p.tilewidth, p.tilelength) == (tile_w, tile_h) and p.imagedepth == 1
             and p.compression == _JPEG and p.photometric in (_RGB, _YCBCR) and p.samplesperpixel == 3
             and p.bitspersample == 8 and p.planarconfig == _CONTIG]
    return found[0] if len(found) == 1 else None


def _level_tile(properties: Mapping[str, str], level: int) -> tuple[int, int]:
    """The level's stored tile (width, height) as OpenSlide reports it, (0, 0) when it does not."""
    try:
        return (int(properties.get(f"openslide.level[{level}].tile-width") or 0),
                int(properties.get(f"openslide.level[{level}].tile-height") or 0))
    except ValueError:
        return 0, 0


def _index(path: Path, version: tuple[int, int], properties: Mapping[str, str],
           level_dimensions: tuple[tuple[int, int], ...]) -> StoredTiles | None:
    import tifffile

    try:
        file = open(path, "rb", buffering=0)  # noqa: SIM115 - kept open by the index
        with tifffile.TiffFile(file) as tif:
            pages = list(tif.pages)
            stored = StoredTiles(path, version, file)
            for level, (width, height) in enumerate(level_dimensions):
                tile_w, tile_h = _level_tile(properties, level)
                page = _level_page(pages, width, height, tile_w, tile_h) if tile_w and tile_h else None
                if page is None:
                    continue
                stored.levels[level] = _Level(tile_w, tile_h, width, height, -(-width // tile_w),
                                              tuple(int(v) for v in page.dataoffsets),
                                              tuple(int(v) for v in page.databytecounts), page.jpegtables,
                                              page.decode)
    except Exception as exc:  # not a file tifffile can index: every read stays OpenSlide's
        log.debug("%s: no stored-tile index (%s)", path, exc)
        return None
    return stored if stored.levels else None


@functools.lru_cache(maxsize=_CACHED_SLIDES)
def _cached(path: Path, version: tuple[int, int], properties: tuple[tuple[str, str], ...],
            level_dimensions: tuple[tuple[int, int], ...]) -> StoredTiles | None:
    return _index(path, version, dict(properties), level_dimensions)


def tile_sized(properties: Mapping[str, str], level: int, w: int, h: int) -> bool:
    """Whether a (w, h) read of ``level`` is small enough to come here (cheap: OpenSlide's properties), so that
    whole-level reads never build an index."""
    tile_w, tile_h = _level_tile(properties, level)
    return 0 < w <= 4 * tile_w and 0 < h <= 4 * tile_h


def stored_tiles(path: Path, properties: Mapping[str, str],
                 level_dimensions: tuple[tuple[int, int], ...]) -> StoredTiles | None:
    """The slide's stored-tile index, built once per process and file version (a reopened slide, as the loader's
    handle cache reopens them, reuses it and its checks), or None when no level qualifies."""
    if properties.get("openslide.vendor") not in VENDORS:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    keep = tuple(sorted((k, v) for k, v in properties.items()
                        if k.startswith(("openslide.level[", "openslide.vendor"))))
    return _cached(path.resolve(), (st.st_mtime_ns, st.st_size), keep, level_dimensions)
