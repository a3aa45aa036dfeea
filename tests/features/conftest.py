"""A tiny synthetic cohort (``histcode.synth``) laid out as the extract stage expects it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TILE_PX = 256
GRID = 3  # tiles per side taken from the slide centre (keeps tests fast)


@pytest.fixture(scope="session")
def synth_slides(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Training-cohort slide files of ``SynthConfig.tiny()`` (generated once per session)."""
    from histcode.synth.config import SynthConfig
    from histcode.synth.generate import generate

    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig.tiny(), out)
    return sorted(p for p in (out / "tcga_synth" / "slides").iterdir() if p.suffix in (".svs", ".tiff"))


def _coords_for(path: Path) -> tuple[np.ndarray, dict]:
    from histcode.slides.reader import SlideReader

    with SlideReader(path) as r:
        mpp, (w, h) = r.mpp, r.dimensions
    size = round(TILE_PX * 0.5 / mpp)
    x0, y0 = (w - GRID * size) // 2, (h - GRID * size) // 2
    coords = np.array([(x0 + i * size, y0 + j * size) for j in range(GRID) for i in range(GRID)], dtype=np.int32)
    attrs = {"patch_size": size, "patch_level": 0, "downsample": [1.0, 1.0], "level_dim": [w, h],
             "target_mpp": 0.5, "tile_px": TILE_PX, "slide_mpp": mpp}
    return coords, attrs


@pytest.fixture
def synth_project(synth_slides: list[Path], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = a project with 3 synthetic slides: manifest, coords files; MLflow store in the session temp."""
    from histcode.io.coords import write_coords

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp()}/ssl_features_mlflow.db")
    rows = []
    for path in synth_slides[:3]:
        sid = path.name.split(".")[0]
        local = tmp_path / "slides" / path.name
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, local)
        coords, attrs = _coords_for(local)
        write_coords(tmp_path / "data" / "tiles" / "synth" / f"{sid}.h5", coords, attrs)
        rows.append({"slide_id": sid, "path": str(local), "patient_id": sid[:12], "cohort": "synth",
                     "sample_type": "tumor", "label": 1, "mpp": None})
    manifest = tmp_path / "data" / "manifests" / "synth" / "slides.csv"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return tmp_path
