"""Attention files: the one writer and reader round trip (float32 scores, int32 coords, attrs, optional P(tumour))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from histcode.io.attention import read_attention, read_attention_attrs, write_attention


def test_round_trip_with_and_without_slide_probability(tmp_path: Path) -> None:
    coords = np.array([[0, 0], [256, 0], [0, 256]], dtype=np.int64)
    raw = np.array([0.5, -1.25, 3.0])
    weights = np.exp(raw) / np.exp(raw).sum()
    write_attention(tmp_path / "mil.h5", coords, raw, weights, {"slide_id": "s", "pooling": None}, prob_tumor=0.75)
    c, r, w, attrs = read_attention(tmp_path / "mil.h5")
    assert c.dtype == np.int32 and r.dtype == np.float32 and w.dtype == np.float32
    np.testing.assert_array_equal(c, coords)
    np.testing.assert_allclose(r, raw, rtol=1e-6)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)
    assert attrs == {"slide_id": "s", "prob_tumor": 0.75}  # None-valued attrs are left out
    write_attention(tmp_path / "gene.h5", coords, raw, weights, {"gene": "CD3D", "fold": 2})
    assert read_attention_attrs(tmp_path / "gene.h5") == {"gene": "CD3D", "fold": 2}


def test_missing_file_and_dataset_say_how_to_fix(tmp_path: Path) -> None:
    import h5py

    with pytest.raises(FileNotFoundError, match="run `dvc repro train_mil`"):
        read_attention(tmp_path / "none.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_dataset("coords", data=np.zeros((1, 2), np.int32))
    with pytest.raises(KeyError, match="'attention_raw' missing"):
        read_attention(tmp_path / "bad.h5")
