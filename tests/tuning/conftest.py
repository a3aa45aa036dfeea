"""A tiny project tree in the real file contracts (DESIGN §3-4) for the Optuna studies.

``make_project(root)`` writes, under ``root``: ``data/manifests/toy/slides.csv``, one features h5 per
slide (``features`` float16 (N, D), ``coords`` int32 (N, 2), attrs), the patient splits train_mil saves,
tumour-model attention h5 files and the DE targets (``log10_fc.parquet``, ``de_labels.parquet``), plus a
``params.yaml``. Tumour slides carry 20-40% tiles shifted along a fixed direction (the planted signal);
the attention score of a tile is its projection on that direction, and each gene's log10 fold change is a
fixed linear function of three columns of the top/bottom-attention embedding plus noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from histcode.cohort.splits import make_patient_splits, save_splits
from histcode.genes.inputs import top_bottom_embedding

DIM = 8
GENES = ["GATA3", "PTEN", "CD3D", "MYC"]
MIL = {
    "hidden": 16, "attn_hidden": 8, "dropout": 0.0, "lr": 0.003, "max_epochs": 6, "min_epochs": 2,
    "patience": 2, "n_folds": 3, "val_frac": 0.2, "bootstrap": 50, "progress": False, "threads": 1,
}
TUNE_MIL = {
    "n_trials": 3, "timeout_s": None, "folds": 2, "startup_trials": 2, "prune_startup_trials": 1,
    "prune_warmup_folds": 1,
    "space": {
        "lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
        "weight_decay": {"low": 1.0e-6, "high": 1.0e-3, "log": True},
        "dropout": {"low": 0.0, "high": 0.3},
        "hidden": {"choices": [8, 16]},
        "attn_hidden": {"choices": [4, 8]},
    },
}
TUNE_DE = {  # the registered method (de.method default summaries/rrr): its summaries' settings; fold 2 checks
    "n_trials": 3, "timeout_s": None, "folds": 2, "startup_trials": 2,
    "space": {"summary_pca_dim": {"choices": [2, 4]}, "n_prototypes": {"choices": [0, 3]},
              "summary_center_slides": {"choices": [False, True]}},
}
HEADS_SPACE = {"lr": {"low": 1.0e-3, "high": 1.0e-1, "log": True},
               "weight_decay": {"low": 1.0e-5, "high": 1.0e-2, "log": True},
               "epochs": {"low": 20, "high": 60, "step": 20}}


def _write_h5(path: Path, datasets: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
        f.attrs.update(attrs)


def make_project(root: Path, *, n_patients: int = 12, seed: int = 0) -> dict[str, Any]:
    """Write the toy cohort and params.yaml under ``root``; return the params dict."""
    rng = np.random.default_rng(seed)
    direction = np.zeros(DIM)
    direction[:3] = 1.0
    weights = np.zeros((2 * DIM, len(GENES)))
    weights[[4, 5, DIM + 4], :] = rng.normal(size=(3, len(GENES)))  # fold changes ride on 3 input columns
    fdir, adir = root / "data/features/toy/adco", root / "data/attention/toy/gated_attention"
    rows, emb = [], {}
    for p in range(n_patients):
        pid = f"TCGA-TT-{p:04d}"
        for label in [1, 0] if p % 4 else [1]:
            sid = f"{pid}-{'01' if label else '11'}Z-00-DX1"
            n = int(rng.integers(20, 40))
            feats = rng.normal(size=(n, DIM))
            if label:
                k = max(2, int(n * rng.uniform(0.2, 0.4)))
                feats[rng.choice(n, k, replace=False)] += 2.5 * direction
            coords = (np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2)[:n] * 256).astype(np.int32)
            feats16 = feats.astype(np.float16)
            _write_h5(fdir / f"{sid}.h5", {"features": feats16, "coords": coords},
                      {"encoder": "adco", "encoder_uri": "test", "dim": DIM, "tile_px": 256, "target_mpp": 0.5})
            raw = feats16.astype(np.float64) @ direction
            attention = {"coords": coords, "attention_raw": raw, "attention": np.exp(raw) / np.exp(raw).sum()}
            _write_h5(adir / f"{sid}.h5", attention, {"pooling": "gated_attention"})
            if label:
                emb[pid] = top_bottom_embedding(feats16.astype(np.float32), raw, 5, 5)
            rows.append({"slide_id": sid, "path": f"slides/{sid}.tiff", "patient_id": pid, "cohort": "toy",
                         "sample_type": "Primary Tumor" if label else "Solid Tissue Normal", "label": label,
                         "mpp": 0.5})
    manifest = pd.DataFrame(rows)
    (root / "data/manifests/toy").mkdir(parents=True, exist_ok=True)
    manifest.to_csv(root / "data/manifests/toy/slides.csv", index=False)
    splits = make_patient_splits(manifest, MIL["n_folds"], MIL["val_frac"], None, seed=1)
    save_splits(splits, root / "data/splits/toy", meta={"made_by": "test"})

    pids = sorted(emb)
    x = np.stack([emb[p] for p in pids]).astype(np.float64)
    fc = 0.5 + 0.2 * (x @ weights) + 0.02 * rng.normal(size=(len(pids), len(GENES)))
    expr = root / "data/expression/toy"
    expr.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(fc, index=pd.Index(pids, name="patient_id"), columns=GENES).to_parquet(expr / "log10_fc.parquet")
    labels = (fc > np.median(fc, axis=0)).astype(float)
    pd.DataFrame(labels, index=pd.Index(pids, name="patient_id"), columns=GENES).to_parquet(
        expr / "de_labels.parquet")

    params = {
        "base": {"seed": 7, "train_cohort": "toy",
                 "cohorts": {"toy": {"kind": "gdc", "source_dir": "x", "slide_dir": "x"}}},
        "extract": {"encoders": ["adco"]},
        "mil": MIL,
        "de": {"top_l": 5, "bottom_l": 5, "lr": 0.01, "weight_decay": 0.001, "epochs": 40, "n_folds": 3,
               "heatmap_genes": [], "encoder": "adco", "attention_model": "gated_attention", "progress": False},
        "tune": {"storage_dir": "optuna", "mil": TUNE_MIL, "de": TUNE_DE},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def use_project(root: Path, fresh_mlflow: Callable[[Path, pytest.MonkeyPatch], None],
                mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """chdir into ``root``, point MLflow at a private copy of the template store, write the project."""
    mp.chdir(root)
    fresh_mlflow(root, mp)
    return make_project(root)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs tiny models: single-threaded (tests/conftest.py)."""
