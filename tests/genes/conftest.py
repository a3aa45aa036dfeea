"""A tiny on-disk cohort in the DESIGN §4 layout with a planted gene signal, for the genes tests.

Each patient has a latent s. Tumour slides hold ``n_tiles`` tiles of D=6 features; the tumour model's
"hot" tiles (highest attention) carry s in feature 0, so the top-l mean encodes s. Genes PLANT_A/PLANT_B
have log10(fc+1) = 0.5 + 0.25 s (+ small noise); NULL_A/NULL_B are independent noise. CD3D is set by the
fraction of "lymphocyte" tiles (feature 1 = +3), which only a per-tile model (the gene MIL) can see.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

GENES = ["PLANT_A", "PLANT_B", "NULL_A", "NULL_B", "CD3D"]


def _h5(path: Path, **datasets: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        for k, v in datasets.items():
            fh.create_dataset(k, data=v)


def write_cohort(root: Path, *, n_patients: int = 30, n_tiles: int = 40, seed: int = 0,
                 cohort: str = "toy", encoder: str = "adco", attn: str = "gated_attention") -> dict:
    rng = np.random.default_rng(seed)
    data = root / "data"
    s = rng.normal(size=n_patients)
    lymph_frac = rng.uniform(0.05, 0.5, size=n_patients)
    rows, reg = [], {}
    for i in range(n_patients):
        pid = f"TCGA-XX-{i:04d}"
        n = n_tiles + int(rng.integers(0, 10))
        feats = rng.normal(size=(n, 6)).astype(np.float32)
        hot = rng.choice(n, size=n // 4, replace=False)
        feats[hot, 0] = s[i] * 2 + rng.normal(scale=0.1, size=hot.size)
        lymph = rng.choice(n, size=max(1, round(lymph_frac[i] * n)), replace=False)
        feats[lymph, 1] = 3.0
        coords = np.stack([np.arange(n) * 256, np.zeros(n)], axis=1).astype(np.int32)
        raw = rng.normal(scale=0.1, size=n)
        raw[hot] += 5.0
        sid = f"{pid}-01Z-00-DX1"
        _h5(data / "features" / cohort / encoder / f"{sid}.h5", features=feats.astype(np.float16), coords=coords)
        w = np.exp(raw - raw.max())
        _h5(data / "attention" / cohort / attn / f"{sid}.h5", coords=coords, attention_raw=raw.astype(np.float32),
            attention=(w / w.sum()).astype(np.float32))
        rows.append({"slide_id": sid, "path": f"/x/{sid}.svs", "patient_id": pid, "cohort": cohort,
                     "sample_type": "tumor", "label": 1, "mpp": 0.5})
        rows.append({"slide_id": f"{pid}-11A-00-TS1", "path": "/x/n.svs", "patient_id": pid, "cohort": cohort,
                     "sample_type": "normal", "label": 0, "mpp": 0.5})
        noise = rng.normal(scale=0.03, size=2)
        reg[pid] = [0.5 + 0.25 * s[i] + noise[0], 0.5 + 0.25 * s[i] + noise[1],
                    rng.normal(0.5, 0.25), rng.normal(0.5, 0.25), 0.2 + 1.5 * lymph_frac[i]]
    (data / "manifests" / cohort).mkdir(parents=True)
    pd.DataFrame(rows).to_csv(data / "manifests" / cohort / "slides.csv", index=False)
    expr = data / "expression" / cohort
    expr.mkdir(parents=True)
    log10 = pd.DataFrame.from_dict(reg, orient="index", columns=GENES)
    log10.index.name = "patient_id"
    log10.to_parquet(expr / "log10_fc.parquet")
    fc = 10 ** log10 - 1
    log2 = np.log2(fc.clip(lower=1e-2))
    log2.to_parquet(expr / "log2_fc.parquet")
    (log2.abs() > 1.5).astype(int).to_parquet(expr / "de_labels.parquet")
    pd.DataFrame({"gene": GENES, "source": ["intogen"] * 4 + ["marker"]}).to_csv(expr / "panel.csv", index=False)
    pd.DataFrame({"patient_id": list(reg), "tumour_sample_id": "t", "normal_sample_id": "n"}).to_csv(
        expr / "pairs.csv", index=False)
    return {"root": root, "data": data, "cohort": cohort, "s": s, "lymph_frac": lymph_frac,
            "patients": list(reg), "log10": log10}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs tiny models: single-threaded (tests/conftest.py)."""


@pytest.fixture
def toy_cohort(tmp_path: Path) -> dict:
    return write_cohort(tmp_path)


@pytest.fixture
def make_params():
    return params_dict


def params_dict(root: Path, cohort: str = "toy", **de: object) -> dict:
    """A params mapping for the toy cohort (fast training settings unless overridden)."""
    de_section = {"top_l": 5, "bottom_l": 5, "epochs": 150, "lr": 0.01, "weight_decay": 0.1, "n_folds": 4,
                  "heatmap_genes": ["CD3D"], "mil_epochs": 3, "mil_hidden": 16, "mil_attn_hidden": 8,
                  "mil_lr": 0.005, "attention_model": "gated_attention", "progress": False, "mil_workers": 0,
                  **de}
    return {
        "base": {"seed": 7, "data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                 "train_cohort": cohort,
                 "cohorts": {cohort: {"kind": "gdc", "source_dir": "x", "slide_dir": "x"}}},
        "de": de_section,
    }
