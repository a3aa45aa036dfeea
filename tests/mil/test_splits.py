"""Patient-level CV splits: disjoint by patient, every patient tested once, stratified, saved and reloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from histcode.cohort.splits import fold_patients, load_splits, make_patient_splits, save_splits


def manifest(n_patients: int, seed: int, normal_share: float = 0.7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        kinds = [1, 0] if rng.random() < normal_share else [int(rng.random() < 0.8)]
        rows += [{"slide_id": f"P{p}-{k}", "patient_id": f"P{p}", "label": k} for k in kinds]
    return pd.DataFrame(rows)


@settings(max_examples=40, deadline=None)
@given(st.integers(6, 80), st.integers(2, 6), st.sampled_from([0.0, 0.1, 0.2]), st.integers(0, 10_000))
def test_folds_are_disjoint_by_patient_and_each_patient_is_tested_once(
    n: int, k: int, val: float, seed: int
) -> None:
    m = manifest(max(n, k), seed)
    df = make_patient_splits(m, n_folds=k, val_frac=val, seed=seed)
    patients = set(m["patient_id"])
    for fold in range(k):
        parts = fold_patients(df, fold)
        sets = [set(parts[s]) for s in ("train", "val", "test")]
        assert sets[0] | sets[1] | sets[2] == patients
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
        assert len(parts["test"]) in (len(patients) // k, -(-len(patients) // k))  # balanced folds
        assert (len(parts["val"]) == 0) == (val == 0)
    tested = df[df["split"] == "test"].groupby("patient_id")["fold"].nunique()
    assert set(tested.index) == patients and (tested == 1).all()


def test_splits_are_stratified_and_deterministic() -> None:
    m = manifest(60, 3)
    a = make_patient_splits(m, n_folds=5, val_frac=0.1, seed=7)
    pd.testing.assert_frame_equal(a, make_patient_splits(m, n_folds=5, val_frac=0.1, seed=7))
    assert not a.equals(make_patient_splits(m, n_folds=5, val_frac=0.1, seed=8))
    strata = m.groupby("patient_id")["label"].agg(lambda s: "+".join(map(str, sorted(set(s)))))
    for fold in range(5):
        test = strata[fold_patients(a, fold)["test"]].value_counts()
        for stratum, total in strata.value_counts().items():
            assert abs(test.get(stratum, 0) - total / 5) <= 1  # each stratum split evenly over test folds
    # 80/10/10 share of train/val is the documented 70/10/20 with 5 folds (test = 1/n_folds)
    f0 = fold_patients(a, 0)
    assert (len(f0["train"]), len(f0["val"]), len(f0["test"])) == (42, 6, 12)


def test_test_frac_must_match_the_fold_count() -> None:
    m = manifest(20, 0)
    with pytest.raises(ValueError, match=r"test share is 1/n_folds=0.200; set mil.test_frac to null"):
        make_patient_splits(m, n_folds=5, test_frac=0.1)
    assert len(make_patient_splits(m, n_folds=10, test_frac=0.1)) == 20 * 10
    with pytest.raises(ValueError, match="3 patients cannot fill 5 test folds"):
        make_patient_splits(manifest(3, 0), n_folds=5)


def test_save_load_roundtrip_and_corrupt_files(tmp_path: Path) -> None:
    df = make_patient_splits(
        manifest(15, 1).assign(patient_id=lambda d: d["patient_id"].str.replace("P", "0")),
        n_folds=3,
        val_frac=0.2,
        seed=0,
    )
    save_splits(df, tmp_path / "s", meta={"seed": 0})
    back = load_splits(tmp_path / "s")
    assert back["patient_id"].iloc[0].startswith("0")  # ids stay strings (leading zeros kept)
    pd.testing.assert_frame_equal(back, df)
    bad = df.copy()
    bad.loc[bad["split"] == "test", "split"] = "train"
    bad.to_csv(tmp_path / "s" / "splits.csv", index=False)
    with pytest.raises(ValueError, match="not tested exactly once"):
        load_splits(tmp_path / "s")
    with pytest.raises(FileNotFoundError, match="run `dvc repro train_mil`"):
        load_splits(tmp_path / "nothing")
