"""A small tiled TIFF slide (OpenSlide generic-tiff) with a tissue block whose left half is 'tumour'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

W, H, PATCH = 2048, 1536, 256


def write_slide(path: Path) -> Path:
    import tifffile

    img = np.full((H, W, 3), 242, np.uint8)
    img[256:1280, 256:1024] = (120, 40, 110)  # "tumour": dark purple
    img[256:1280, 1024:1792] = (230, 150, 200)  # "normal": pink
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path,
        img,
        tile=(256, 256),
        photometric="rgb",
        compression="jpeg",
        resolution=(1e4 / 0.5, 1e4 / 0.5),
        resolutionunit="CENTIMETER",
    )
    return path


def grid_coords() -> np.ndarray:
    """The 4 x 6 tissue tiles (level-0 top-left x, y) of the slide, row-major."""
    xs, ys = np.meshgrid(np.arange(256, 1792, PATCH), np.arange(256, 1280, PATCH))
    return np.stack([xs.ravel(), ys.ravel()], 1).astype(np.int32)


def truth_mask(downsample: int = 16) -> np.ndarray:
    """Region codes at 1/16 scale: 3 = tumour, 2 = normal epithelium, 0 = background."""
    m = np.zeros((H // downsample, W // downsample), np.uint8)
    m[256 // downsample : 1280 // downsample, 256 // downsample : 1024 // downsample] = 3
    m[256 // downsample : 1280 // downsample, 1024 // downsample : 1792 // downsample] = 2
    return m


@pytest.fixture(scope="session")
def slide_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slide(tmp_path_factory.mktemp("slide") / "TCGA-AA-0001-01Z-00-DX1.tiff")
