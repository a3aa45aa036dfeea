"""Held-out fold per patient for DE cross-validation, reusing the MIL engineer's patient splits.

Reusing the tumour-diagnosis folds keeps a patient's DE prediction out of every model that saw the patient,
including the MIL model whose attention chose its tiles. Patients absent from the splits (e.g. RNA-only
patients added later) are assigned by ``assign_folds``: sorted ids, permuted by ``numpy.random
.default_rng(seed)``, each placed in the currently smallest fold (ties → lowest fold index). That is
deterministic for a seed and keeps folds balanced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def heldout_from_splits(splits: pd.DataFrame, where: str = "splits") -> dict[str, int]:
    """patient_id → the fold in which it is held out (``split == "test"``).

    Accepts the long format (one row per patient and fold, ``split`` in train/val/test) and a one-row-per-
    patient table whose ``fold`` is the held-out fold.
    """
    for col in ("patient_id", "fold"):
        if col not in splits.columns:
            raise ValueError(f"{where}: column {col!r} missing; expected (patient_id, fold, split)")
    df = splits.assign(patient_id=splits["patient_id"].astype(str))
    if "split" in df.columns and (df["split"] == "test").any():
        df = df[df["split"] == "test"]
    dup = df["patient_id"][df["patient_id"].duplicated()].unique()
    if len(dup):
        raise ValueError(f"{where}: patients held out in more than one fold: {sorted(dup)[:5]}; regenerate splits")
    return {p: int(f) for p, f in zip(df["patient_id"], df["fold"], strict=True)}


def assign_folds(patients: Sequence[str], n_folds: int, seed: int,
                 counts: Mapping[int, int] | None = None) -> dict[str, int]:
    """Deterministic balanced assignment of ``patients`` to ``n_folds`` folds, topping up ``counts``."""
    if n_folds < 2:
        raise ValueError(f"need >= 2 folds, got {n_folds}")
    sizes = np.array([int((counts or {}).get(k, 0)) for k in range(n_folds)])
    ids = sorted(str(p) for p in patients)
    order = np.random.default_rng(seed).permutation(len(ids))
    out: dict[str, int] = {}
    for i in order:
        k = int(np.argmin(sizes))
        out[ids[i]] = k
        sizes[k] += 1
    return out


def load_split_table(splits_dir: Path) -> pd.DataFrame | None:
    """The MIL splits via ``histcode.cohort.splits.load_splits``; None when no splits were written."""
    from histcode.cohort.splits import SPLITS_CSV, load_splits

    if not (splits_dir / SPLITS_CSV).exists():
        return None
    return load_splits(splits_dir)


def patient_folds(patients: Sequence[str], splits: pd.DataFrame | None, *, n_folds: int, seed: int,
                  where: str = "splits") -> tuple[dict[str, int], dict[str, int]]:
    """Held-out fold of each patient plus counts ``{"from_splits", "assigned", "n_folds"}``.

    With splits, their number of folds wins over ``n_folds`` so both stages share one partition.
    """
    known = heldout_from_splits(splits, where) if splits is not None and len(splits) else {}
    if known:
        n_folds = max(max(known.values()) + 1, int(splits["fold"].nunique()))
    wanted = [str(p) for p in patients]
    folds = {p: known[p] for p in wanted if p in known}
    missing = [p for p in wanted if p not in folds]
    counts = pd.Series(list(folds.values()), dtype=int).value_counts().to_dict()
    folds.update(assign_folds(missing, n_folds, seed, counts))
    info = {"from_splits": len(wanted) - len(missing), "assigned": len(missing), "n_folds": n_folds}
    return folds, info
