"""Tile-sized region reads of JPEG TIFF slides from the stored tiles: OpenSlide's pixels and errors, 4-6x cheaper.

OpenSlide spends 1.3-1.8 ms on a 240-256 px region of a JPEG TIFF, but only ~0.3 ms of it decoding the tile: the
rest is painting the region (a cairo composite of premultiplied ARGB) and converting it back. Tile reads
(extraction, pretraining) are the loader's main cost, so they come here: each stored tile the region touches is
decoded by libjpeg-turbo in strict mode (simplejpeg), where its warnings are errors as OpenSlide makes them
("Premature end of JPEG file", "Corrupt JPEG data: premature end of data segment"): a damaged tile is never
decoded here, where imagecodecs or Pillow decode it without a word. A region inside one tile is that tile or a crop
of it, a region across a few tiles (TCGA's 240-px SVS tiles under a 256-px grid) is stitched from them. Decoded
tiles that a read does not use whole are kept (``CACHE_BYTES``) for the neighbouring reads.

Only such reads come here: generic TIFF and Aperio SVS, JPEG, RGB/YCbCr, 8-bit, integer downsample, region wholly
inside the level and over at most ``MAX_TILES`` tiles, every tile with bytes. The first read of each level in a
process is compared pixel for pixel with OpenSlide's read of the region; a level that differs goes back to
OpenSlide for good. Anything else (a damaged tile above all) is read by OpenSlide whole, so the pixels are always
OpenSlide's and damaged tiles keep OpenSlide's errors and salvage.
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
import simplejpeg

log = logging.getLogger(__name__)

VENDORS = ("generic-tiff", "aperio")  # OpenSlide formats whose levels are the TIFF's own tiled pages
MAX_TILES = 16  # a read over more stored tiles (a 512-px region of 240-px tiles spans up to 9) goes to OpenSlide
CACHE_BYTES = 32 << 20  # decoded tiles kept per process, all slides together
_JPEG, _RGB, _YCBCR, _CONTIG = 7, 2, 6, 1  # TIFF tag values
_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
# APP14 "Adobe", transform 0: the three components are R, G, B (Aperio's RGB tiles carry no marker that says so)
_ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
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
    head: bytes  # SOI, the Adobe marker of RGB tiles and the shared tables: each tile's stream follows its own SOI
    checked: bool = False  # compared with OpenSlide once in this process

    def decode(self, data: bytes) -> np.ndarray:
        """A stored tile's (tile_h, tile_w, 3) RGB; raises on a damaged tile (strict: libjpeg's warnings too)."""
        if data[:2] != _SOI:
            raise ValueError("not a JPEG stream")
        return simplejpeg.decode_jpeg(self.head + data[2:], colorspace="RGB", strict=True)


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
             openslide_rgb: Callable[[], np.ndarray | None]) -> np.ndarray | None:
        """(h, w, 3) uint8 RGB (writable) of the level-0 (x, y) region, or None when it does not qualify or a tile
        does not decode. ``openslide_rgb`` reads the whole region with OpenSlide (None when it has transparent
        pixels); it is called once per level to check the decoder, and its pixels are returned on that first read."""
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
        if (tx0, ty0) == (tx1, ty1) and (w, h) == (lv.tile_w, lv.tile_h):
            rgb = self._tile(level, lv, tx0, ty0, keep=False)
        else:
            rgb = self._stitch(level, lv, lx, ly, w, h, (tx0, ty0, tx1, ty1))
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
                span: tuple[int, int, int, int]) -> np.ndarray | None:
        """The level region (lx, ly, w, h) copied out of the stored tiles ``span`` (tx0, ty0, tx1, ty1) covers."""
        tx0, ty0, tx1, ty1 = span
        out = np.empty((h, w, 3), np.uint8)
        for ty in range(ty0, ty1 + 1):
            y0, y1 = max(ly, ty * lv.tile_h), min(ly + h, (ty + 1) * lv.tile_h)
            for tx in range(tx0, tx1 + 1):
                tile = self._tile(level, lv, tx, ty, keep=True)
                if tile is None:
                    return None
                x0, x1 = max(lx, tx * lv.tile_w), min(lx + w, (tx + 1) * lv.tile_w)
                out[y0 - ly:y1 - ly, x0 - lx:x1 - lx] = tile[y0 - ty * lv.tile_h:y1 - ty * lv.tile_h,
                                                             x0 - tx * lv.tile_w:x1 - tx * lv.tile_w]
        return out

    def _tile(self, level: int, lv: _Level, tx: int, ty: int, *, keep: bool) -> np.ndarray | None:
        """Stored tile (tx, ty) of ``level`` decoded (tile_h, tile_w, 3), from the cache or kept in it when ``keep``;
        None when it has no bytes (OpenSlide leaves it transparent) or does not decode cleanly."""
        index = ty * lv.across + tx
        key = (self.path, self.version, level, index)
        tile = _CACHE.get(key)
        if tile is not None:
            return tile if keep else tile.copy()
        if not lv.counts[index]:
            return None
        try:
            tile = lv.decode(os.pread(self.file.fileno(), lv.counts[index], lv.offsets[index]))
        except Exception as exc:  # a damaged tile or any decoder error: OpenSlide reads the region and reports it
            log.debug("%s: stored tile %d of level %d not decoded (%s); reading it with OpenSlide", self.path,
                      index, level, exc)
            return None
        if tile.shape != (lv.tile_h, lv.tile_w, 3):
            return None
        if keep:
            tile.flags.writeable = False  # shared through the cache
            _CACHE.put(key, tile)
        return tile


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
                tables = page.jpegtables or _SOI + _EOI
                if tables[:2] != _SOI or tables[-2:] != _EOI:
                    continue
                head = _SOI + (_ADOBE_RGB if page.photometric == _RGB else b"") + tables[2:-2]
                stored.levels[level] = _Level(tile_w, tile_h, width, height, -(-width // tile_w),
                                              tuple(int(v) for v in page.dataoffsets),
                                              tuple(int(v) for v in page.databytecounts), head)
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
