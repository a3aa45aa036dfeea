import pandas as pd
import pytest

from histcode.cohort.splits import make_patient_splits
from histcode.genes.folds import assign_folds, heldout_from_splits, patient_folds


def _manifest(n: int) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": [f"P{i:02d}" for i in range(n)], "label": [i % 2 for i in range(n)]})


def test_heldout_fold_is_the_test_fold_of_the_mil_splits():
    splits = make_patient_splits(_manifest(12), n_folds=3, val_frac=0.1, seed=1)
    held = heldout_from_splits(splits)
    test = splits[splits["split"] == "test"]
    assert held == dict(zip(test["patient_id"], test["fold"], strict=True))
    assert len(held) == 12


def test_assign_folds_deterministic_balanced_and_tops_up():
    ids = [f"P{i}" for i in range(11)]
    a = assign_folds(ids, 4, seed=3)
    assert a == assign_folds(list(reversed(ids)), 4, seed=3)  # input order does not matter
    assert a != assign_folds(ids, 4, seed=4)
    sizes = pd.Series(a).value_counts()
    assert sizes.max() - sizes.min() <= 1 and set(sizes.index) == {0, 1, 2, 3}
    topped = assign_folds(["X", "Y"], 3, seed=0, counts={0: 5, 1: 4, 2: 5})
    assert sorted(topped.values()) == [0, 1]  # first fills the smallest fold 1, then the tie goes to fold 0


def test_patient_folds_reuses_splits_and_assigns_the_rest():
    splits = make_patient_splits(_manifest(10), n_folds=5, val_frac=0.0, seed=0)
    folds, info = patient_folds(["P00", "P03", "NEW1", "NEW2"], splits, n_folds=3, seed=0)
    held = heldout_from_splits(splits)
    assert folds["P00"] == held["P00"] and folds["P03"] == held["P03"]
    assert info == {"from_splits": 2, "assigned": 2, "n_folds": 5}
    assert {folds["NEW1"], folds["NEW2"]} <= set(range(5))
    no_splits, info2 = patient_folds(["a", "b", "c", "d"], None, n_folds=2, seed=0)
    assert info2["n_folds"] == 2 and sorted(no_splits.values()) == [0, 0, 1, 1]


def test_patient_tested_twice_is_an_error():
    bad = pd.DataFrame({"patient_id": ["A", "A"], "fold": [0, 1], "split": ["test", "test"]})
    with pytest.raises(ValueError, match="more than one fold"):
        heldout_from_splits(bad, "data/splits/x")
