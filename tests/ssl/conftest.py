"""A tiny on-disk cohort for the pretrain stage: two tiled TIFF slides, a manifest and coords files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def write_tiff_slide(path: Path, rgb: np.ndarray, mpp: float = 0.5) -> None:
    """A tiled RGB TIFF OpenSlide opens as a generic-tiff slide with mpp from the resolution tags."""
    import tifffile

    res = 1e4 / mpp  # pixels per centimetre
    tifffile.imwrite(path, rgb, tile=(128, 128), photometric="rgb", compression="zlib",
                     resolution=(res, res), resolutionunit="CENTIMETER")


@pytest.fixture
def tiff_project(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp project root (cwd) with data/manifests/tiny/slides.csv and data/tiles/tiny/<slide>.h5.

    The MLflow sqlite store lives in the session's base temp dir (creating one costs seconds)."""
    from histcode.io.coords import write_coords

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp()}/ssl_features_mlflow.db")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2):
        sid = f"slide{i}"
        yy, xx = np.mgrid[0:512, 0:512]
        base = (np.sin(xx / (6 + 4 * i)) + np.cos(yy / 9)) * 40 + 170
        rgb = np.clip(base[..., None] * [1.0, 0.75, 0.95] + rng.normal(0, 12, (512, 512, 3)), 0, 255)
        path = tmp_path / "slides" / f"{sid}.tiff"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tiff_slide(path, rgb.astype(np.uint8))
        coords = np.array([(x, y) for y in range(0, 449, 64) for x in range(0, 449, 64)], dtype=np.int32)
        write_coords(tmp_path / "data" / "tiles" / "tiny" / f"{sid}.h5", coords,
                     {"patch_size": 64, "patch_level": 0, "downsample": [1.0, 1.0], "level_dim": [512, 512],
                      "target_mpp": 0.5, "tile_px": 64, "slide_mpp": 0.5})
        rows.append({"slide_id": sid, "path": str(path), "patient_id": f"P{i}", "cohort": "tiny",
                     "sample_type": "tumor", "label": 1, "mpp": 0.5})
    manifest = tmp_path / "data" / "manifests" / "tiny" / "slides.csv"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return tmp_path
