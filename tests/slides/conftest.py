"""Fixtures for slide tests: real slides from tests/data and tiny pyramidal TIFFs with known ground truth."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

DATA = Path(__file__).resolve().parents[1] / "data"
CMU1 = DATA / "CMU-1-Small-Region.svs"
DICOM = DATA / "slidetool_test_dicom.dcm"
CLAM_H5 = DATA / "clam_TCGA-63-7022-01A-01-BS1.h5"
PEN_THUMB = DATA / "histolab_diagnostic-slide-thumb-rgb.png"
HE_TILE = DATA / "CRC-VAL-HE-7K-NORM-TCGA-YLVCMEHK.tif"

PINK = np.array([226, 160, 200], np.float64)
PURPLE = np.array([110, 60, 150], np.float64)
GLASS = np.array([242, 242, 244], np.float64)


def write_tiff(path: Path, img: np.ndarray, *, mpp: float | None = None, description: str | None = None,
               levels: int = 3) -> Path:
    """Tiled pyramidal TIFF (each level half the previous) that OpenSlide opens (generic-tiff or aperio)."""
    with tifffile.TiffWriter(path) as tw:
        level, ds = img, 1
        for i in range(levels):
            kw = {}
            if mpp is not None:
                kw = {"resolution": (1e4 / (mpp * ds), 1e4 / (mpp * ds)), "resolutionunit": "CENTIMETER"}
            tw.write(level, tile=(128, 128), photometric="rgb", compression="zlib", metadata=None,
                     description=description if i == 0 else None, subfiletype=1 if i else 0, **kw)
            if min(level.shape[:2]) < 256:
                break
            level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
            ds *= 2
    return path


def aperio_description(width: int, height: int, app_mag: int) -> str:
    return (f"Aperio Image Library v12.0.0\r\n{width}x{height} [0,0 {width}x{height}] (128x128) RGB"
            f"|AppMag = {app_mag}|Filename = synthetic")


@dataclasses.dataclass
class Scene:
    """A synthetic slide image with ground truth: rgb (H, W, 3) uint8, tissue/pen (H, W) bool."""

    rgb: np.ndarray
    tissue: np.ndarray
    pen: np.ndarray


def make_scene(width: int, height: int, seed: int = 0) -> Scene:
    """Glass, two H&E-coloured tissue pieces (one with a large hole), green and red ink strokes, a black
    dot on glass, and dust specks far below the minimum tissue area. Geometry scales with the size."""
    rng = np.random.default_rng(seed)
    s = width / 1600.0
    tissue = np.zeros((height, width), np.uint8)
    cv2.ellipse(tissue, (int(520 * s), int(560 * s)), (int(330 * s), int(420 * s)), 15, 0, 360, 1, -1)
    cv2.ellipse(tissue, (int(1180 * s), int(430 * s)), (int(230 * s), int(170 * s)), -20, 0, 360, 1, -1)
    cv2.circle(tissue, (int(520 * s), int(600 * s)), int(110 * s), 0, -1)  # large lumen/hole
    pen = np.zeros((height, width), np.uint8)
    stroke = (np.array([[880, 820], [1050, 900], [1400, 880], [1520, 1100]]) * s).astype(np.int32)
    cv2.polylines(pen, [stroke], False, 1, int(60 * s))
    pen_red = np.zeros_like(pen)
    cv2.ellipse(pen_red, (int(930 * s), int(240 * s)), (int(60 * s), int(35 * s)), 0, 0, 360, 1, -1)
    black = np.zeros_like(pen)
    cv2.circle(black, (int(1300 * s), int(1150 * s)), int(30 * s), 1, -1)
    field = cv2.resize(rng.random((height // 16 + 1, width // 16 + 1)), (width, height))
    mix = np.clip(field, 0, 1)[..., None]
    he = PINK * (1 - 0.6 * mix) + PURPLE * 0.6 * mix
    noise = rng.normal(0, 3.0, (height, width, 3))
    rgb = np.where(tissue[..., None] > 0, he, GLASS) + noise
    rgb[pen > 0] = rgb[pen > 0] * 0.3 + np.array([20, 150, 110]) * 0.7  # green ink (translucent)
    rgb[pen_red > 0] = rgb[pen_red > 0] * 0.3 + np.array([200, 20, 30]) * 0.7  # red ink
    rgb[black > 0] = (25, 20, 30)
    for _ in range(30):  # dust: 2-4 µm specks
        y, x = rng.integers(0, height), rng.integers(0, width)
        if not tissue[y, x]:
            cv2.circle(rgb, (int(x), int(y)), max(1, int(2 * s)), (150, 120, 140), -1)
    return Scene(rgb=np.clip(rgb, 0, 255).astype(np.uint8), tissue=(tissue > 0) & ~(pen > 0) & ~(pen_red > 0),
                 pen=(pen > 0) | (pen_red > 0) | (black > 0))


@pytest.fixture(scope="session")
def scene() -> Scene:
    return make_scene(1600, 1280, seed=3)


@pytest.fixture(scope="session")
def scene_slide(tmp_path_factory: pytest.TempPathFactory, scene: Scene) -> Path:
    """The scene as a 3-level TIFF at 1.0 µm/px (generic-tiff with resolution tags)."""
    return write_tiff(tmp_path_factory.mktemp("scene") / "scene.tif", scene.rgb, mpp=1.0)


@pytest.fixture(scope="session")
def blank_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(1)
    img = np.clip(GLASS + rng.normal(0, 2.0, (768, 1024, 3)), 0, 255).astype(np.uint8)
    return write_tiff(tmp_path_factory.mktemp("blank") / "blank.tif", img, mpp=0.5)


@pytest.fixture(scope="session")
def no_mpp_slide(tmp_path_factory: pytest.TempPathFactory, scene: Scene) -> Path:
    """The scene without any resolution metadata (no mpp, no objective power)."""
    return write_tiff(tmp_path_factory.mktemp("nompp") / "nompp.tif", scene.rgb[:768, :1024], levels=1)


@pytest.fixture(scope="session")
def truncated_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CMU-1 cut to its first 40%: the header is intact, tile data is missing."""
    data = CMU1.read_bytes()
    path = tmp_path_factory.mktemp("trunc") / "truncated.svs"
    path.write_bytes(data[: int(len(data) * 0.4)])
    return path


@pytest.fixture(scope="session")
def corrupt_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CMU-1 with its tile data zeroed in the middle: opens, but reading tissue fails to decode."""
    data = bytearray(CMU1.read_bytes())
    n = len(data)
    data[n // 10: n // 2] = bytes(n // 2 - n // 10)
    path = tmp_path_factory.mktemp("corrupt") / "corrupt.svs"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="session")
def bad_jpeg_tile_slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[int, int, int, int]]:
    """CMU-1 with one of its 240-px JPEG tiles damaged mid-stream, as some TCGA SVS files are (OpenSlide: "Corrupt
    JPEG data: premature end of data segment"); returns the path and the bad tile's (x, y, w, h)."""
    with tifffile.TiffFile(CMU1) as t:
        page = t.pages[0]
        n, (th, tw), width = len(page.dataoffsets), page.tile, page.shape[1]
    i = n // 2
    path = damage_jpeg_tile(CMU1, tmp_path_factory.mktemp("badtile") / "bad_tile.svs", 0, i)
    per_row = -(-width // tw)
    return path, ((i % per_row) * tw, (i // per_row) * th, tw, th)


def damage_jpeg_tile(src: Path, dst: Path, page_index: int, tile_index: int) -> Path:
    """Copy ``src`` with one JPEG tile of one TIFF page cut short by an early end-of-image marker and noise after
    it, as some TCGA SVS files are (OpenSlide: "Corrupt JPEG data: premature end of data segment")."""
    with tifffile.TiffFile(src) as t:
        page = t.pages[page_index]
        start, length = int(page.dataoffsets[tile_index]), int(page.databytecounts[tile_index])
    data = bytearray(src.read_bytes())
    cut = start + length // 3
    data[cut: cut + 2] = b"\xff\xd9"
    data[cut + 2: start + length] = bytes((7 * k) % 251 for k in range(start + length - cut - 2))
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="session")
def bad_dicom_frame_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real DICOM test slide (40 JPEG frames of 256 px, 2 µm/px) with its middle frame cut short as above."""
    data = bytearray(DICOM.read_bytes())
    starts = [m.start() for m in re.finditer(rb"\xff\xd8\xff", bytes(data))]  # each frame's JPEG start marker
    start = starts[len(starts) // 2]
    end = data.find(b"\xff\xd9", start)
    cut = start + (end - start) // 3
    data[cut: cut + 2] = b"\xff\xd9"
    data[cut + 2: end] = bytes((7 * k) % 251 for k in range(end - cut - 2))
    path = tmp_path_factory.mktemp("baddicom") / "bad_frame.dcm"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="session")
def unscanned_band_slides(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The real DICOM test slide rewritten as a 3-level TIFF three ways: as it is; with a 256-px band beside it left
    transparent, as MIRAX, Leica SCN and sparse DICOM leave what was not scanned; and with that band opaque white,
    as a conversion with a white background writes it."""
    import openslide

    with openslide.OpenSlide(str(DICOM)) as s:
        w, h = s.dimensions
        rgba = np.asarray(s.read_region((0, 0), 0, (w, h)))
        mpp = float(s.properties["openslide.mpp-x"])
    folder = tmp_path_factory.mktemp("unscanned")
    out = []
    for name, band in (("plain", None), ("transparent", (0, 0, 0, 0)), ("white", (255, 255, 255, 255))):
        img = rgba if band is None else np.concatenate([np.full((h, 256, 4), band, np.uint8), rgba], axis=1)
        alpha = name == "transparent"
        with tifffile.TiffWriter(folder / f"{name}.tif") as tw:
            level = img if alpha else np.ascontiguousarray(img[..., :3])
            for i in range(3):
                tw.write(level, tile=(128, 128), photometric="rgb", compression="zlib", metadata=None,
                         subfiletype=1 if i else 0, resolution=(1e4 / (mpp * 2**i),) * 2, resolutionunit="CENTIMETER",
                         **({"extrasamples": ["unassalpha"]} if alpha else {}))
                level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
        out.append(folder / f"{name}.tif")
    return out[0], out[1], out[2]


@pytest.fixture(scope="session")
def damaged_pyramid(tmp_path_factory: pytest.TempPathFactory, scene: Scene) -> tuple[Path, Path, tuple[int, ...]]:
    """The scene as a 3-level JPEG pyramid (128-px tiles, 1.0 µm/px) and a copy with one tile of level 1 damaged;
    returns (intact, damaged, the bad tile's (x, y, w, h) in level-1 px)."""
    folder = tmp_path_factory.mktemp("pyramid")
    intact = folder / "intact.tif"
    with tifffile.TiffWriter(intact) as tw:
        level = scene.rgb
        for i in range(3):
            tw.write(level, tile=(128, 128), photometric="rgb", compression="jpeg", metadata=None,
                     subfiletype=1 if i else 0, resolution=(1e4 / 2**i, 1e4 / 2**i), resolutionunit="CENTIMETER")
            level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
    per_row = -(-scene.rgb.shape[1] // 2 // 128)
    i = 2 * per_row + 5  # a tile over tissue
    damaged = damage_jpeg_tile(intact, folder / "damaged.tif", 1, i)
    return intact, damaged, ((i % per_row) * 128, (i // per_row) * 128, 128, 128)


def write_manifest(path: Path, rows: list[tuple[str, Path | str, str]]) -> Path:
    """slides.csv as ingest writes it (DESIGN §3): rows of (slide_id, path, mpp)."""
    lines = ["slide_id,path,patient_id,cohort,sample_type,label,mpp"]
    lines += [f"{sid},{p},P{i},test,tumor,1,{mpp}" for i, (sid, p, mpp) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def tiff_writer():
    return write_tiff


@pytest.fixture(scope="session")
def manifest_writer():
    return write_manifest


@pytest.fixture(scope="session")
def scene_maker():
    return make_scene
