"""SlideReader: resolution order, best-level reads, strip downscaling, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import openslide
import pytest

from histcode.slides import reader as reader_mod
from histcode.slides.reader import SlideError, SlideReader

DATA = Path(__file__).resolve().parents[1] / "data"
CMU1 = DATA / "CMU-1-Small-Region.svs"
DICOM = DATA / "slidetool_test_dicom.dcm"


def test_cmu1_metadata_and_tile_equals_openslide() -> None:
    with SlideReader(CMU1) as s:
        assert s.mpp == pytest.approx(0.499) and s.mpp_source == "openslide.mpp"
        assert s.dimensions == (2220, 2967) and s.vendor == "aperio" and s.level_count == 1
        tile = s.read_tile(1000, 1200, 256, 256)
    ref = np.asarray(openslide.OpenSlide(str(CMU1)).read_region((1000, 1200), 0, (256, 256)))[..., :3]
    assert tile.shape == (256, 256, 3) and tile.dtype == np.uint8
    np.testing.assert_array_equal(tile, ref)


def test_read_tile_resizes_like_area_interpolation() -> None:
    """A 40x-style read: 512 level-0 px → 256 px by area averaging of the level-0 region."""
    with SlideReader(CMU1) as s:
        tile = s.read_tile(600, 900, 512, 256)
        big = s.read_tile(600, 900, 512, 512)
    np.testing.assert_array_equal(tile, cv2.resize(big, (256, 256), interpolation=cv2.INTER_AREA))


def test_read_tile_uses_best_level(scene_slide: Path) -> None:
    """On a 3-level pyramid, 4x downsampled reads come from level 2 and match it pixel for pixel."""
    with SlideReader(scene_slide) as s:
        assert s.level_downsamples == (1.0, 2.0, 4.0)
        assert s.best_level(4.0) == 2 and s.best_level(3.99) == 1 and s.best_level(100) == 2
        tile = s.read_tile(400, 400, 512, 128)
    lvl2 = np.asarray(openslide.OpenSlide(str(scene_slide)).read_region((400, 400), 2, (128, 128)))[..., :3]
    np.testing.assert_array_equal(tile, lvl2)


def test_dicom_opens() -> None:
    with SlideReader(DICOM) as s:
        assert s.vendor == "dicom" and s.dimensions == (1000, 2459)
        assert s.mpp == pytest.approx(2.004)
        assert s.thumbnail(256).shape[0] == 256


def test_mpp_order(tmp_path: Path, tiff_writer, scene) -> None:
    img = scene.rgb[:512, :512]
    aperio = tiff_writer(tmp_path / "mag40.svs", img, levels=1,
                         description="Aperio Image Library v12.0.0\r\n512x512 (128x128) RGB|AppMag = 40")
    with SlideReader(aperio, mpp_override=0.9, default_mpp=0.7) as s:
        assert (s.mpp, s.mpp_source) == (0.25, "objective-power")  # file metadata beats the manifest
    bare = tiff_writer(tmp_path / "bare.tif", img, levels=1)
    with SlideReader(bare, mpp_override=0.9, default_mpp=0.7) as s:
        assert (s.mpp, s.mpp_source) == (0.9, "manifest")
    with SlideReader(bare, mpp_override=float("nan"), default_mpp=0.7) as s:
        assert (s.mpp, s.mpp_source) == (0.7, "default_mpp")
    with SlideReader(bare) as s, pytest.raises(SlideError) as err:
        _ = s.mpp
    msg = str(err.value)
    assert "bare.tif" in msg and "'mpp' column" in msg and "default_mpp" in msg


def test_read_downsampled_is_block_mean_in_strips(tmp_path: Path, tiff_writer, scene,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Single-level slide read in many strips (strip size forced small) equals the numpy block mean."""
    img = scene.rgb[:1000, :1300]
    path = tiff_writer(tmp_path / "flat.tif", img, mpp=0.5, levels=1)
    monkeypatch.setattr(reader_mod, "_STRIP", 96)
    monkeypatch.setattr(reader_mod, "MAX_LEVEL_PIXELS", 1000)  # never read the level whole
    with SlideReader(path) as s:
        small, ds = s.read_downsampled(16.5)
    assert ds == 16.0 and small.shape == (63, 82, 3)
    pad = np.full((63 * 16, 82 * 16, 3), 255, np.float64)
    pad[:1000, :1300] = img
    ref = pad.reshape(63, 16, 82, 16, 3).mean(axis=(1, 3))
    assert np.abs(small.astype(np.float64) - ref).max() <= 1.0


def test_wider_than_opencv_limit(tmp_path: Path) -> None:
    """A 70,000 px wide single-level slide: read_downsampled works without any 65,500 px OpenCV call."""
    import tifffile

    w, h, t = 70_144, 512, 256
    tissue = np.zeros((t, t, 3), np.uint8) + np.array([200, 120, 180], np.uint8)
    glass = np.full((t, t, 3), 240, np.uint8)

    def tiles():
        for _ in range(h // t):
            for tx in range(w // t):
                yield tissue if 30_000 <= tx * t < 40_000 else glass

    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, tiles(), shape=(h, w, 3), dtype=np.uint8, tile=(t, t), photometric="rgb",
                     compression="zlib", resolution=(2e4, 2e4), resolutionunit="CENTIMETER", metadata=None)
    with SlideReader(path) as s:
        assert s.dimensions == (w, h)
        small, ds = s.read_downsampled(64)
    assert ds == 64 and small.shape == (8, 1096, 3)
    sat = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)[..., 1]
    cols = np.flatnonzero(sat.mean(axis=0) > 40)
    first, last = -(-30_000 // t) * t, (-(-40_000 // t)) * t  # tissue tiles cover [30208, 40192)
    assert (cols.min(), cols.max() + 1) == (first // 64, last // 64)


def test_bad_inputs(tmp_path: Path, truncated_slide: Path, corrupt_slide: Path) -> None:
    with pytest.raises(SlideError, match="not found"):
        SlideReader(tmp_path / "nope.svs")
    junk = tmp_path / "notes.svs"
    junk.write_text("slide_id,path\n")
    with pytest.raises(SlideError, match="not a slide format OpenSlide can read"):
        SlideReader(junk)
    with pytest.raises(SlideError, match=r"truncated\.svs: looks like a TIFF .* corrupt or truncated"):
        SlideReader(truncated_slide)
    with SlideReader(corrupt_slide) as s, pytest.raises(
            SlideError, match=r"corrupt\.svs: reading region .* of the slide is unreadable at every pyramid level, "
                              r"more than the 5% .* re-download it"):
        s.read_downsampled(8)
    with SlideReader(CMU1) as s, pytest.raises(SlideError, match="outside the slide"):
        s.read_tile(5000, 0, 256, 256)


def _grid_reads(path: Path) -> dict[tuple[int, int], np.ndarray | None]:
    with SlideReader(path) as s:
        w, h = s.dimensions
        out: dict[tuple[int, int], np.ndarray | None] = {}
        for y in range(0, h - 256, 256):
            for x in range(0, w - 256, 256):
                try:
                    out[(x, y)] = s.read_tile(x, y, 256, 256)
                except (SlideError, openslide.OpenSlideError):  # a stuck handle fails even its metadata
                    out[(x, y)] = None
    return out


def test_one_corrupt_jpeg_tile_costs_only_the_reads_that_touch_it(bad_jpeg_tile_slide, monkeypatch) -> None:
    """OpenSlide leaves a handle in an error state after a decode error, so every later read of the slide failed:
    one damaged JPEG tile cost the rest of the slide. The reader reopens the handle; only reads that overlap the bad
    tile fail, and every other tile is the original's."""
    path, (bx, by, bw, bh) = bad_jpeg_tile_slide
    good = _grid_reads(CMU1)
    got = _grid_reads(path)
    touching = {k for k in got if k[0] < bx + bw and bx < k[0] + 256 and k[1] < by + bh and by < k[1] + 256}
    assert {k for k, v in got.items() if v is None} == touching and 1 <= len(touching) <= 4
    for k, v in got.items():
        if v is not None:
            np.testing.assert_array_equal(v, good[k])
    monkeypatch.setattr(SlideReader, "_reopen_after", lambda self, exc: None)  # the handle as OpenSlide leaves it
    stuck = _grid_reads(path)
    first = min(touching, key=lambda k: (k[1], k[0]))
    assert sum(v is None for v in stuck.values()) > len(touching)
    assert all(v is None for k, v in stuck.items() if (k[1], k[0]) >= (first[1], first[0]))


def test_whole_slide_reads_keep_a_slide_with_one_damaged_tile(bad_jpeg_tile_slide) -> None:
    """Segmentation reads the whole slide; one corrupt JPEG tile used to fail that read and so the slide. Now the
    read goes on block by block: a block no level can decode is white and recorded, every other pixel is the
    original's."""
    path, (bx, by, bw, bh) = bad_jpeg_tile_slide
    with SlideReader(CMU1) as s:
        good, _ = s.read_downsampled(1.0)
    with SlideReader(path) as s:
        got, ds = s.read_downsampled(1.0)
        assert ds == 1.0 and s.unreadable == [(bx, by, bw, bh)]  # CMU-1-Small-Region has one level
        for _ in range(8):  # reading it again (thumbnails) neither counts the block twice nor gives up at 5 %
            s.read_downsampled(1.0)
        assert s.unreadable == [(bx, by, bw, bh)]
    inside = np.zeros(good.shape[:2], bool)
    inside[by:by + bh, bx:bx + bw] = True
    assert np.all(got[inside] == 255)
    np.testing.assert_array_equal(got[~inside], good[~inside])


def test_a_damaged_tile_is_read_from_another_pyramid_level(damaged_pyramid) -> None:
    """Each pyramid level is compressed on its own, so a block that fails at one level is taken from the nearest
    other level: nothing is lost, and the block is the same tissue (JPEG and resampling differences only)."""
    intact, damaged, (x, y, w, h) = damaged_pyramid
    with SlideReader(intact) as s:
        good = s.read_level(1)
    with SlideReader(damaged) as s:
        with pytest.raises(SlideError, match="Corrupt JPEG data"):  # the plain read fails ...
            s.read_tile(2 * x, 2 * y, 2 * w, w)
        got = s.read_level(1)  # ... the whole-level read salvages it
        assert s.unreadable == []
    block = np.zeros(good.shape[:2], bool)
    block[y:y + h, x:x + w] = True
    np.testing.assert_array_equal(got[~block], good[~block])
    diff = np.abs(got[block].astype(int) - good[block].astype(int))
    assert 0 < diff.mean() < 3 and good[block].std() > 10  # a textured tissue block, reproduced within JPEG error


def test_a_slide_mostly_unreadable_still_fails(corrupt_slide: Path) -> None:
    """Salvage stops at MAX_UNREADABLE: a slide with much of its data gone is re-downloaded, not tiled."""
    with SlideReader(corrupt_slide) as s:
        with pytest.raises(SlideError, match="unreadable at every pyramid level"):
            s.read_level(0)
        lost = sum(r[2] * r[3] for r in s.unreadable) / (s.dimensions[0] * s.dimensions[1])
    assert reader_mod.MAX_UNREADABLE < lost < 2 * reader_mod.MAX_UNREADABLE  # it gave up at the limit, not later
