"""Tiny MIL cohorts written in the real file contracts (DESIGN §3-4): slides.csv + features h5 per slide."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest


def write_features(path: Path, feats: np.ndarray, coords: np.ndarray, encoder: str = "adco") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=feats.astype(np.float16))
        f.create_dataset("coords", data=coords.astype(np.int32))
        f.attrs.update(
            {
                "encoder": encoder,
                "encoder_uri": "data/models/encoder",
                "dim": feats.shape[1],
                "tile_px": 256,
                "target_mpp": 0.5,
            }
        )


def make_cohort(
    root: Path,
    *,
    n_patients: int = 12,
    dim: int = 16,
    seed: int = 0,
    cohort: str = "toy",
    encoder: str = "adco",
    signal: float = 2.0,
    site: str = "TT",
) -> tuple[pd.DataFrame, Path]:
    """Every patient has a tumour slide; 3 of 4 also a normal one. Tumour slides hold 20-40% 'tumour'
    tiles shifted along a fixed direction (the planted signal); returns (manifest, features dir). Patients are
    ``TCGA-<site>-0000`` on: an external cohort needs a site of its own (its patients are not training's)."""
    rng = np.random.default_rng(seed)
    direction = np.zeros(dim)
    direction[:4] = 1.0
    fdir = root / "data" / "features" / cohort / encoder
    rows = []
    for p in range(n_patients):
        pid = f"TCGA-{site}-{p:04d}"
        for label in [1, 0] if p % 4 else [1]:
            sid = f"{pid}-{'01' if label else '11'}Z-00-DX1"
            n = int(rng.integers(20, 60))
            feats = rng.normal(size=(n, dim))
            if label:
                k = max(1, int(n * rng.uniform(0.2, 0.4)))
                feats[rng.choice(n, k, replace=False)] += signal * direction
            xs, ys = np.meshgrid(np.arange(10), np.arange(10))
            grid = np.stack([xs.ravel(), ys.ravel()], 1)[:n] * 256
            write_features(fdir / f"{sid}.h5", feats, grid, encoder)
            rows.append(
                {
                    "slide_id": sid,
                    "path": f"slides/{sid}.tiff",
                    "patient_id": pid,
                    "cohort": cohort,
                    "sample_type": "Primary Tumor" if label else "Solid Tissue Normal",
                    "label": label,
                    "mpp": 0.5,
                }
            )
    manifest = pd.DataFrame(rows)
    mdir = root / "data" / "manifests" / cohort
    mdir.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(mdir / "slides.csv", index=False)
    return manifest, fdir


@pytest.fixture
def toy_cohort(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    return make_cohort(tmp_path)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs tiny models: single-threaded (tests/conftest.py)."""
