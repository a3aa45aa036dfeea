"""Patient-level cross-validation splits, saved as files and reused by every model stage.

Fold k's test set is the k-th of ``n_folds`` disjoint, label-stratified patient groups (so every patient is
tested exactly once and the test share is 1/n_folds); ``val_frac`` of all patients is drawn, stratified,
from the remaining ones for early stopping; the rest train. A patient is never in two splits of a fold,
so a tumour and a normal slide of one patient never straddle train and test.

With ``groups`` (patient → group, e.g. its TCGA tissue source site: ``mil.cv_groups: site``) the test folds
are made of whole groups instead: the site-preserved CV of Howard et al. (Nat Commun 2021), so no model is
tested on a site it trained on, with the patients of each stratum spread as evenly as whole groups allow
(their objective; here a greedy deal and seeded random starts, each improved by moving and swapping groups;
their code solves it with CPLEX: ``benchmarks/bench_site_folds.py`` compares).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.atomic import write_csv, write_json
from histcode.cohort.barcodes import site_of

SPLITS_CSV = "splits.csv"
SPLITS_META = "splits.json"
SPLIT_NAMES = ("train", "val", "test")


def patient_strata(manifest: pd.DataFrame) -> pd.Series:
    """One stratum per patient: the sorted set of slide labels it has ('0', '1' or '0+1')."""
    for col in ("patient_id", "label"):
        if col not in manifest.columns:
            raise ValueError(f"manifest lacks column {col!r} (needs patient_id, label; see DESIGN §3)")
    df = manifest.dropna(subset=["label"]).astype({"patient_id": str})
    labels = df.groupby("patient_id")["label"]
    return labels.agg(lambda s: "+".join(str(int(v)) for v in sorted(set(s)))).sort_index()


def _blocked_order(strata: pd.Series, rng: np.random.Generator) -> list[str]:
    """Strata one after another, each shuffled: dealing this order round-robin into k folds gives every
    fold floor/ceil of each stratum's share and fold sizes within one patient of each other."""
    order: list[str] = []
    for _, group in sorted(strata.groupby(strata), key=lambda kv: kv[0]):
        ids = sorted(group.index)
        order += [ids[j] for j in rng.permutation(len(ids))]
    return order


def _stratified_order(strata: pd.Series, rng: np.random.Generator) -> list[str]:
    """Patients interleaved across strata after a seeded shuffle, so any prefix is stratified."""
    order: list[tuple[float, str]] = []
    for _, group in sorted(strata.groupby(strata), key=lambda kv: kv[0]):
        ids = sorted(group.index)
        perm = rng.permutation(len(ids))
        offset = rng.random()
        order += [((i + offset) / len(ids), ids[j]) for i, j in enumerate(perm)]
    return [pid for _, pid in sorted(order)]


def _imbalance(have: np.ndarray, want: np.ndarray) -> float:
    """Σ over folds and strata of (patients − even share)²: Howard et al.'s objective, up to the factor k²."""
    return float(((have - want) ** 2).sum())


RESTARTS = 20  # random starts polished besides the greedy deal (site-preserved folds)


def _polish(where: np.ndarray, size: np.ndarray, want: np.ndarray, n_folds: int) -> tuple[float, np.ndarray]:
    """Move single groups and swap pairs between folds while one lowers the imbalance (no fold left empty)."""
    have = np.zeros((n_folds, size.shape[1]))
    np.add.at(have, where, size)
    n_groups = np.bincount(where, minlength=n_folds)
    best = _imbalance(have, want)
    improved = True
    while improved:
        improved = False
        for i in range(len(where)):
            for g in range(n_folds):
                f = where[i]
                if g == f or n_groups[f] == 1:
                    continue
                trial = have.copy()
                trial[f] -= size[i]
                trial[g] += size[i]
                if (v := _imbalance(trial, want)) < best - 1e-9:
                    have, best, where[i], improved = trial, v, g, True
                    n_groups[f] -= 1
                    n_groups[g] += 1
        for i in range(len(where)):
            for j in range(i + 1, len(where)):
                f, g = where[i], where[j]
                if f == g:
                    continue
                trial = have.copy()
                trial[f] += size[j] - size[i]
                trial[g] += size[i] - size[j]
                if (v := _imbalance(trial, want)) < best - 1e-9:
                    have, best, where[i], where[j], improved = trial, v, g, f, True
    return best, where


def _group_test_folds(strata: pd.Series, groups: Mapping[str, str], n_folds: int,
                      rng: np.random.Generator) -> dict[str, int]:
    """patient → test fold, whole groups per fold: a greedy deal (largest group first, to the fold it unbalances
    least) and ``RESTARTS`` seeded random assignments, each polished by moves and swaps; the least imbalanced
    wins (ties: the earlier). Deterministic for a seed; a fraction of a second for tens of sites."""
    members: dict[str, list[str]] = {}
    for pid in strata.index:
        members.setdefault(groups[pid], []).append(pid)
    if len(members) < n_folds:
        raise ValueError(f"{len(members)} sites cannot fill {n_folds} test folds with whole sites; lower "
                         "mil.n_folds or set mil.cv_groups: patient")
    kinds = sorted(set(strata))
    want = np.array([(strata == k).sum() / n_folds for k in kinds])
    names = sorted(members)
    tie = dict(zip(names, rng.permutation(len(names)), strict=True))
    order = sorted(names, key=lambda g: (-len(members[g]), tie[g]))
    fold_rank = rng.permutation(n_folds)
    size = np.array([[sum(strata[p] == k for p in members[g]) for k in kinds] for g in order], dtype=float)
    have = np.zeros((n_folds, len(kinds)))
    greedy = np.zeros(len(order), dtype=int)
    for i, add in enumerate(size):
        gain = ((have + add - want) ** 2).sum(axis=1) - ((have - want) ** 2).sum(axis=1)
        greedy[i] = min(range(n_folds), key=lambda f: (round(float(gain[f]), 9), fold_rank[f]))
        have[greedy[i]] += add
    starts = [greedy] + [np.concatenate([rng.permutation(n_folds), rng.integers(0, n_folds, len(order) - n_folds)])
                         for _ in range(RESTARTS)]
    _, where = min((_polish(w.copy(), size, want, n_folds) for w in starts), key=lambda r: r[0])
    return {p: int(where[i]) for i, g in enumerate(order) for p in members[g]}


def make_patient_splits(
    manifest_df: pd.DataFrame,
    n_folds: int = 5,
    val_frac: float = 0.1,
    test_frac: float | None = None,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Long table (patient_id, fold, split) with one row per patient per fold.

    ``test_frac`` must be None or 1/n_folds (each patient is in exactly one test fold). ``groups`` (patient →
    group) makes the test folds of whole groups.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if test_frac is not None and abs(test_frac * n_folds - 1.0) > 1e-6:
        raise ValueError(
            f"test_frac={test_frac} with n_folds={n_folds}: every patient is tested in exactly "
            f"one fold, so the test share is 1/n_folds={1 / n_folds:.3f}; set mil.test_frac to "
            f"null (or change n_folds, e.g. 10 folds for 10% test sets)"
        )
    if not 0.0 <= val_frac < 1.0 - 1.0 / n_folds:
        raise ValueError(f"val_frac must be in [0, {1 - 1 / n_folds:.2f}), got {val_frac}")
    strata = patient_strata(manifest_df)
    if len(strata) < n_folds:
        raise ValueError(f"{len(strata)} patients cannot fill {n_folds} test folds; lower mil.n_folds")
    rng = np.random.default_rng(seed)
    order = _blocked_order(strata, rng)
    if groups is None:
        start = int(rng.integers(n_folds))
        test_fold = {pid: (start + i) % n_folds for i, pid in enumerate(order)}
    else:
        missing = [p for p in order if p not in groups]
        if missing:
            raise ValueError(f"no group for patient(s) {missing[:5]}")
        test_fold = _group_test_folds(strata, groups, n_folds, rng)
    n_val = max(round(val_frac * len(order)), 1) if val_frac > 0 else 0
    rows = []
    for fold in range(n_folds):
        rest = pd.Series({pid: strata[pid] for pid in order if test_fold[pid] != fold})
        val = set(_stratified_order(rest, np.random.default_rng([seed, fold]))[:n_val])
        for pid in order:
            split = "test" if test_fold[pid] == fold else ("val" if pid in val else "train")
            rows.append((pid, fold, split))
    df = pd.DataFrame(rows, columns=["patient_id", "fold", "split"])
    return df.sort_values(["fold", "patient_id"], kind="stable").reset_index(drop=True)


def site_groups(manifest: pd.DataFrame, cohort: str) -> dict[str, str]:
    """patient → TCGA tissue source site, for ``mil.cv_groups: site``; a patient id without a TCGA barcode is a
    one-line ConfigError (there is no site to group by)."""
    from histcode.config import ConfigError

    out = {str(p): site_of(str(p)) for p in manifest["patient_id"].unique()}
    bad = sorted(p for p, site in out.items() if site is None)
    if bad:
        raise ConfigError(f"mil.cv_groups: site needs TCGA patient barcodes (TCGA-<site>-<participant>); cohort "
                          f"{cohort} has {len(bad)} patient(s) without one (e.g. {bad[0]!r}): set mil.cv_groups: "
                          "patient")
    return {p: str(site) for p, site in out.items()}


def split_groups_meta(splits: pd.DataFrame, groups: Mapping[str, str]) -> dict:
    """What ``splits.json`` records of grouped folds: the grouping, and per fold its test sites and patients."""
    test = splits[splits["split"] == "test"]
    per_fold = test.groupby("fold")["patient_id"]
    return {"cv_groups": "site", "n_sites": len(set(groups.values())),
            "fold_sites": [sorted({groups[p] for p in g}) for _, g in per_fold],
            "fold_patients": [int(g.size) for _, g in per_fold]}


def save_splits(df: pd.DataFrame, out_dir: str | Path, meta: dict | None = None) -> Path:
    """Write ``splits.csv`` (+ ``splits.json`` with the settings that made it) atomically."""
    check_splits(df)
    out_dir = Path(out_dir)
    write_csv(out_dir / SPLITS_CSV, df[["patient_id", "fold", "split"]])
    n_folds = int(df["fold"].nunique())
    write_json(
        out_dir / SPLITS_META,
        {"n_folds": n_folds, "n_patients": int(df["patient_id"].nunique()), **(meta or {})},
    )
    return out_dir / SPLITS_CSV


def load_splits(split_dir: str | Path) -> pd.DataFrame:
    """Read splits saved by ``save_splits`` (patient_id as str, fold int, split in train/val/test)."""
    path = Path(split_dir) / SPLITS_CSV
    if not path.exists():
        raise FileNotFoundError(f"{path}: no CV splits; run `dvc repro train_mil` (it writes data/splits)")
    df = pd.read_csv(path, dtype={"patient_id": str, "fold": int, "split": str})
    check_splits(df, where=str(path))
    return df


def load_split_meta(split_dir: str | Path) -> dict:
    path = Path(split_dir) / SPLITS_META
    return json.loads(path.read_text()) if path.exists() else {}


def check_splits(df: pd.DataFrame, where: str = "splits") -> None:
    """Raise if columns/values are wrong, a patient repeats within a fold or is tested in != 1 fold."""
    missing = {"patient_id", "fold", "split"} - set(df.columns)
    if missing:
        raise ValueError(f"{where}: missing column(s) {sorted(missing)}")
    bad = sorted(set(df["split"]) - set(SPLIT_NAMES))
    if bad:
        raise ValueError(f"{where}: unknown split name(s) {bad}; valid: {list(SPLIT_NAMES)}")
    dup = df.duplicated(["patient_id", "fold"])
    if dup.any():
        raise ValueError(
            f"{where}: patient(s) {sorted(df.loc[dup, 'patient_id'])[:5]} in two splits of a fold"
        )
    n_test = (
        df[df["split"] == "test"]
        .groupby("patient_id")
        .size()
        .reindex(df["patient_id"].unique(), fill_value=0)
    )
    if (n_test != 1).any():
        raise ValueError(f"{where}: patient(s) {list(n_test[n_test != 1].index[:5])} not tested exactly once")


def fold_patients(splits: pd.DataFrame, fold: int) -> dict[str, list[str]]:
    """{'train': [...], 'val': [...], 'test': [...]} patient ids of one fold."""
    sub = splits[splits["fold"] == fold]
    if sub.empty:
        raise ValueError(f"fold {fold} not in splits (folds: {sorted(splits['fold'].unique())})")
    return {name: sorted(sub.loc[sub["split"] == name, "patient_id"]) for name in SPLIT_NAMES}
