"""Attention files (DESIGN §4), read with h5py/numpy only: heatmaps, DE and evaluation read attention without
importing torch (0.65 GB and seconds of start-up for a file of a few arrays).

``attention/<cohort>/<pooling>/<slide_id>.h5``: ``coords`` int32 (N, 2), ``attention_raw`` (N,) pre-softmax
scores and ``attention`` (N,) weights summing to 1, in the tile order of the features file; attrs carry the
slide's ``prob_tumor`` and the writer's provenance (slide id, features file, pooling, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from histcode.atomic import atomic_path
from histcode.errors import HistcodeError


class AttentionMissing(HistcodeError, FileNotFoundError):
    """A slide has no attention file: its cohort's model has not been run over it yet."""


def read_attention(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(coords (N, 2), attention_raw (N,), attention (N,), attrs) of one slide's attention file."""
    path = Path(path)
    if not path.exists():
        raise AttentionMissing(f"{path}: attention file missing; run `dvc repro train_mil` (the training cohort) or "
                               "`make eval-cptac` (an external cohort: it writes the evaluated model's attention)")
    with h5py.File(path, "r") as f:
        for key in ("coords", "attention_raw", "attention"):
            if key not in f:
                raise KeyError(f"{path}: dataset {key!r} missing; re-run train_mil to export attention")
        return f["coords"][()], f["attention_raw"][()], f["attention"][()], dict(f.attrs)


def read_attention_attrs(path: str | Path) -> dict[str, Any]:
    """Only the attributes of an attention file (slide probability, fold, per-gene truth), not the arrays."""
    with h5py.File(path, "r") as f:
        return dict(f.attrs)


def write_attention(
    path: str | Path, coords: np.ndarray, scores: np.ndarray, weights: np.ndarray, attrs: Mapping[str, Any], *,
    prob_tumor: float | None = None,
) -> None:
    """Write one slide's attention h5 atomically: coords int32, ``attention_raw``/``attention`` float32; attrs
    that are None are left out; ``prob_tumor`` (the tumour model's slide probability) when given."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("coords", data=np.asarray(coords, dtype=np.int32))
        f.create_dataset("attention_raw", data=np.asarray(scores).astype(np.float32))
        f.create_dataset("attention", data=np.asarray(weights).astype(np.float32))
        for k, v in attrs.items():
            if v is not None:
                f.attrs[k] = v
        if prob_tumor is not None:
            f.attrs["prob_tumor"] = float(prob_tumor)
