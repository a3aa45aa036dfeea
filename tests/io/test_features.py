"""Features .h5 format (DESIGN §4), streaming writer atomicity, readable errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from histcode.io.features import FeaturesError, FeatureWriter, read_features, write_features

ATTRS = {"encoder": "adco", "encoder_uri": "/models/encoder", "dim": 4, "tile_px": 256, "target_mpp": 0.5}


def test_round_trip_keeps_dtype_coords_and_attrs(tmp_path: Path) -> None:
    feats = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    coords = np.array([[0, 0], [256, 0], [512, 256]])
    write_features(tmp_path / "s.h5", feats, coords, ATTRS, dtype="float16")
    f, c, attrs = read_features(tmp_path / "s.h5")
    assert f.dtype == np.float16 and c.dtype == np.int32
    np.testing.assert_allclose(f, feats, rtol=1e-3)
    np.testing.assert_array_equal(c, coords)
    assert {k: attrs[k] for k in ATTRS} == ATTRS
    with h5py.File(tmp_path / "s.h5") as fh:  # the DESIGN §4 layout, readable without our code
        assert set(fh.keys()) == {"features", "coords"} and fh["features"].shape == (3, 4)


def test_writer_streams_and_shrinks_to_rows_written(tmp_path: Path) -> None:
    with FeatureWriter(tmp_path / "s.h5", n_max=10, dim=4, dtype="float32", attrs=ATTRS) as w:
        for i in range(3):
            w.write(np.full((2, 4), i, np.float32), np.full((2, 2), i, np.int32))
    f, c, _ = read_features(tmp_path / "s.h5")
    assert f.shape == (6, 4) and c[:, 0].tolist() == [0, 0, 1, 1, 2, 2]


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), FeatureWriter(tmp_path / "s.h5", n_max=4, dim=4, dtype="float32",
                                                    attrs=ATTRS) as w:
        w.write(np.zeros((2, 4), np.float32), np.zeros((2, 2), np.int32))
        raise RuntimeError("encoder crashed")
    assert list(tmp_path.iterdir()) == []


def test_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FeaturesError, match=r"missing.h5: features file not found; run `histcode extract`"):
        read_features(tmp_path / "missing.h5")
    with pytest.raises(FeaturesError, match=r"attrs missing \['target_mpp'\]"):
        write_features(tmp_path / "x.h5", np.zeros((1, 4)), np.zeros((1, 2)),
                       {k: v for k, v in ATTRS.items() if k != "target_mpp"})
    with h5py.File(tmp_path / "bad.h5", "w") as fh:
        fh["features"] = np.zeros((2, 4))
    with pytest.raises(FeaturesError, match="needs datasets 'features' and 'coords'"):
        read_features(tmp_path / "bad.h5")
