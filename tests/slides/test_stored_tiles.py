"""Tile-sized reads of JPEG TIFFs from the stored tiles: OpenSlide's pixels and OpenSlide's errors, at a
fourth to a sixth of the cost (``histcode.slides.stored_tiles``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import openslide
import pytest
import torch

from histcode.slides import stored_tiles as st
from histcode.slides.reader import SlideError, SlideReader
from histcode.slides.tile_dataset import loader_worker_init, worker_init
from histcode.synth.slidefile import ScannerStyle, write_aperio_svs, write_generic_tiff

DATA = Path(__file__).resolve().parents[1] / "data"
CMU1 = DATA / "CMU-1-Small-Region.svs"  # Aperio, 240-px YCbCr JPEG tiles with shared tables


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch):
    """Each test starts as a new process would: no tile index built or checked, no decoded tile kept."""
    monkeypatch.setattr(st, "_CACHE", st._TileCache(st.CACHE_BYTES))
    st._cached.cache_clear()
    yield
    st._cached.cache_clear()


@pytest.fixture(scope="module")
def jpeg_slides(tmp_path_factory: pytest.TempPathFactory, scene) -> dict[str, Path]:
    """The scene (1600 x 1280) as the synthetic cohorts write it: generic TIFF with 256-px tiles, SVS with 240-px
    tiles (a grid a 256-px read straddles; partial tiles at the right and bottom), 4x pyramids."""
    folder = tmp_path_factory.mktemp("jpeg")
    tif = folder / "grid256.tiff"
    write_generic_tiff(tif, scene.rgb, 0.5, ScannerStyle(tile_px=256))
    svs = folder / "grid240.svs"
    write_aperio_svs(svs, scene.rgb, 0.5, ScannerStyle(tile_px=240), label_text="t", date="01/01/26", image_id=1)
    return {"tiff": tif, "svs": svs, "cmu1": CMU1}


def _openslide_rgb(path: Path, x: int, y: int, level: int, w: int, h: int) -> np.ndarray:
    region = np.asarray(openslide.OpenSlide(str(path)).read_region((x, y), level, (w, h)))
    assert (region[..., 3] == 255).all()
    return region[..., :3]


class _CountingSlide:
    """OpenSlide handle wrapper that counts region reads larger than one pixel (the reads the fast path saves)."""

    def __init__(self, slide: openslide.OpenSlide) -> None:
        self._slide, self.regions = slide, 0

    def read_region(self, location, level, size):  # OpenSlide's signature
        self.regions += size != (1, 1)
        return self._slide.read_region(location, level, size)

    def __getattr__(self, name: str):
        return getattr(self._slide, name)


def _reads(path: Path) -> list[tuple[int, int, int, int, int]]:
    """(x, y, level, w, h): whole tiles, crops inside a tile, regions across 2-4 tiles, a level-1 read."""
    with SlideReader(path) as s:
        tw = int(s.properties["openslide.level[0].tile-width"])
        ds1 = int(s.level_downsamples[1]) if s.level_count > 1 else 0
    reads = [(0, 0, 0, tw, tw), (tw, tw, 0, tw, tw), (tw + 16, 32, 0, 128, 96), (tw - 64, tw - 64, 0, 256, 256),
             (200, 300, 0, 256, 256), (512, 512, 0, 256, 256)]
    if ds1:
        reads.append((0, 0, 1, 64, 64))
    return reads


@pytest.mark.parametrize("name", ["tiff", "svs", "cmu1"])
def test_tile_reads_are_openslides_pixels_without_its_region_reads(jpeg_slides, name: str) -> None:
    """Every kind of tile-sized read gives OpenSlide's exact pixels; after the first read of a level (checked
    against OpenSlide's own read of the region) no region goes through OpenSlide."""
    path = jpeg_slides[name]
    reads = _reads(path)
    with SlideReader(path) as s:
        counting = _CountingSlide(s._slide)
        s._slide = counting
        for x, y, level, w, h in reads:
            np.testing.assert_array_equal(s._read_rgb(x, y, level, w, h), _openslide_rgb(path, x, y, level, w, h))
        assert isinstance(s._stored, st.StoredTiles)
        assert counting.regions == len({level for _, _, level, _, _ in reads})  # one check per level
        # a read wholly inside the level but larger than 4 tiles a side, or over the edge, is OpenSlide's
        before = counting.regions
        w0, h0 = s.dimensions
        s._read_rgba(w0 - 100, h0 - 100, 0, 200, 200)
        assert counting.regions == before + 1


def test_a_damaged_tile_fails_as_openslide_fails_it(bad_jpeg_tile_slide) -> None:
    """imagecodecs decodes a damaged JPEG tile without a word; OpenSlide fails it ("premature end of data
    segment"). The strict decode refuses it too, so OpenSlide reads the region and a read over the damaged tile
    raises OpenSlide's error, before or after the level's check; the tiles around it stay the original's."""
    path, (bx, by, bw, bh) = bad_jpeg_tile_slide
    with SlideReader(path) as fast, SlideReader(path) as plain:
        plain._stored = None  # OpenSlide only
        fast._read_rgb(0, 0, 0, 240, 240)  # the level's check passes on a good tile
        for reader in (fast, plain):
            with pytest.raises(SlideError, match="premature end of data segment"):
                reader._read_rgb(bx, by, 0, bw, bh)
            with pytest.raises(SlideError, match="premature end of data segment"):
                reader._read_rgb(bx - 8, by + 16, 0, 256, 256)  # stitched over it
        np.testing.assert_array_equal(fast._read_rgb(bx + bw, by, 0, 256, 256),
                                      plain._read_rgb(bx + bw, by, 0, 256, 256))


def test_a_level_that_decodes_differently_goes_back_to_openslide(jpeg_slides, monkeypatch) -> None:
    """When tifffile's decode differs from OpenSlide's at the level's first read, the read returns OpenSlide's
    pixels and every later read of that level goes through OpenSlide."""
    path = jpeg_slides["tiff"]
    with SlideReader(path) as s:
        stored = st.stored_tiles(s.path, s._slide.properties, s.level_dimensions)
        assert stored is not None and 0 in stored.levels
        decode = stored.levels[0].decode
        stored.levels[0].decode = lambda data: 255 - decode(data)
        counting = _CountingSlide(s._slide)
        s._slide = counting
        for x, y in ((0, 0), (256, 256), (512, 0)):
            np.testing.assert_array_equal(s._read_rgb(x, y, 0, 256, 256), _openslide_rgb(path, x, y, 0, 256, 256))
        assert 0 not in stored.levels and counting.regions == 3


@pytest.mark.parametrize("name", ["tiff", "cmu1"])  # YCbCr tiles; RGB tiles with shared tables (Aperio)
@pytest.mark.parametrize("damage", ["cut short", "noise", "zeroed", "no end marker", "not a JPEG"])
def test_the_strict_decode_refuses_every_damaged_tile(jpeg_slides, name: str, damage: str) -> None:
    """Damage that imagecodecs decodes without a word (round 41) raises in the strict decode, with libjpeg's
    words where OpenSlide has them, while the intact tile decodes to OpenSlide's pixels."""
    path = jpeg_slides[name]
    with SlideReader(path) as s:
        stored = st.stored_tiles(s.path, s._slide.properties, s.level_dimensions)
    lv, i = stored.levels[0], 2
    data = os.pread(stored.file.fileno(), lv.counts[i], lv.offsets[i])
    x, y = (i % lv.across) * lv.tile_w, (i // lv.across) * lv.tile_h
    np.testing.assert_array_equal(lv.decode(data), _openslide_rgb(path, x, y, 0, lv.tile_w, lv.tile_h))
    n = len(data)
    noise = np.random.default_rng(0).integers(0, 256, n // 4, dtype=np.uint8).tobytes()
    bad = {"cut short": data[: n // 2], "noise": data[: n // 2] + noise + data[n // 2 + len(noise):],
           "zeroed": data[: n // 2] + bytes(n // 4) + data[n // 2 + n // 4:], "no end marker": data[:-2],
           "not a JPEG": noise}[damage]
    words = {"cut short": "Premature end of JPEG file", "zeroed": "premature end of data segment",
             "no end marker": "Premature end of JPEG file"}.get(damage)
    with pytest.raises(ValueError, match=words):
        lv.decode(bad)


def test_a_tile_without_bytes_or_that_does_not_decode_goes_to_openslide(jpeg_slides) -> None:
    """A tile with no bytes (OpenSlide leaves it transparent) or whose decode fails is read by OpenSlide whole."""
    path = jpeg_slides["svs"]
    with SlideReader(path) as s:
        s._read_rgb(0, 0, 0, 240, 240)
        lv = s._stored.levels[0]
        counting = _CountingSlide(s._slide)
        s._slide = counting
        lv.counts = tuple(0 if i == 2 * lv.across + 2 else c for i, c in enumerate(lv.counts))
        np.testing.assert_array_equal(s._read_rgb(480, 480, 0, 240, 240), _openslide_rgb(path, 480, 480, 0, 240, 240))
        assert counting.regions == 1
        decode = lv.decode
        lv.decode = lambda data: (_ for _ in ()).throw(ValueError("Corrupt JPEG data"))
        np.testing.assert_array_equal(s._read_rgb(720, 480, 0, 240, 240), _openslide_rgb(path, 720, 480, 0, 240, 240))
        assert counting.regions == 2
        lv.decode = decode
        s._read_rgb(960, 480, 0, 240, 240)
        assert counting.regions == 2


def test_the_tile_cache_keeps_its_byte_bound() -> None:
    cache = st._TileCache(3 * 1000)
    tiles = [np.full(1000, i, np.uint8) for i in range(5)]
    for i, t in enumerate(tiles):
        cache.put((Path("a"), (1, 1), 0, i), t)
    assert [cache.get((Path("a"), (1, 1), 0, i)) is not None for i in range(5)] == [False, False, True, True, True]
    cache.get((Path("a"), (1, 1), 0, 2))  # used: kept over the older 3
    cache.put((Path("a"), (1, 1), 0, 5), tiles[0])
    assert cache.get((Path("a"), (1, 1), 0, 3)) is None and cache.get((Path("a"), (1, 1), 0, 2)) is not None


def test_a_file_replaced_under_the_same_path_is_read_anew(jpeg_slides, scene, tmp_path: Path) -> None:
    """The index and the decoded tiles belong to one version of a file: a slide re-written under the same path (a
    re-download) is read from its new bytes in the same process, not from what was kept of the old ones."""
    path = tmp_path / "slide.svs"
    path.write_bytes(jpeg_slides["svs"].read_bytes())
    with SlideReader(path) as s:
        old = s._read_rgb(200, 300, 0, 256, 256)  # stitched: its tiles are kept
    write_aperio_svs(path, np.ascontiguousarray(255 - scene.rgb), 0.5, ScannerStyle(tile_px=240), label_text="t",
                     date="01/01/26", image_id=1)
    os.utime(path, ns=(1, 1))  # a new mtime, whatever the clock's resolution
    with SlideReader(path) as s:
        s._read_rgb(960, 960, 0, 256, 256)  # the new version's level check, on tiles never read before
        new = s._read_rgb(200, 300, 0, 256, 256)
    np.testing.assert_array_equal(new, _openslide_rgb(path, 200, 300, 0, 256, 256))
    assert not np.array_equal(new, old)


def test_formats_openslide_does_not_map_to_tiff_pages_are_left_alone(jpeg_slides, scene, tiff_writer,
                                                                       tmp_path: Path) -> None:
    """zlib tiles (no JPEG) and DICOM are OpenSlide's alone: no index is built."""
    zlib = tiff_writer(tmp_path / "zlib.tif", scene.rgb[:512, :512], mpp=0.5, levels=1)
    for path in (zlib, DATA / "slidetool_test_dicom.dcm"):
        with SlideReader(path) as s:
            assert st.stored_tiles(s.path, s._slide.properties, s.level_dimensions) is None


def test_cpu_loader_workers_yield_to_the_network() -> None:
    """On a CPU the loader workers run at the lowest priority (the network's threads own the cores); on an
    accelerator they keep the parent's."""
    code = ("import os, torch; from histcode.slides.tile_dataset import loader_worker_init; "
            "loader_worker_init(torch.device('cpu'))(0); print(os.nice(0), torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    nice, threads = (int(v) for v in out.stdout.split())
    assert nice == min(os.nice(0) + 19, 19) and threads == 1
    assert loader_worker_init(torch.device("cuda")) is worker_init
