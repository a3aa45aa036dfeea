"""Attention files (DESIGN §4), read with h5py/numpy only: heatmaps, DE and evaluation read attention without
importing torch (0.65 GB and seconds of start-up for a file of a few arrays).

``attention/<cohort>/<pooling>/<slide_id>.h5``: ``coords`` int32 (N, 2), ``attention_raw`` (N,) pre-softmax
scores and ``attention`` (N,) weights summing to 1, in the tile order of the features file; the writer is
``histcode.mil.inference.write_attention`` (it takes the model's output tensors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np


def read_attention(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(coords (N, 2), attention_raw (N,), attention (N,), attrs) of one slide's attention file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: attention file missing; run `dvc repro train_mil`")
    with h5py.File(path, "r") as f:
        for key in ("coords", "attention_raw", "attention"):
            if key not in f:
                raise KeyError(f"{path}: dataset {key!r} missing; re-run train_mil to export attention")
        return f["coords"][()], f["attention_raw"][()], f["attention"][()], dict(f.attrs)
