"""Coords store: round trip, CLAM compatibility (a real CLAM file), errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from histcode.io.coords import CoordsError, read_coords, write_coords

CLAM_H5 = Path(__file__).resolve().parents[1] / "data" / "clam_TCGA-63-7022-01A-01-BS1.h5"

ATTRS = {"patch_size": 512, "patch_level": 0, "downsample": [1.0, 1.0], "level_dim": [4000, 3000],
         "target_mpp": 0.5, "tile_px": 256, "slide_mpp": 0.25, "tissue_threshold": 0.5,
         "histcode_version": "0.1.0"}


def test_round_trip_and_clam_layout(tmp_path: Path) -> None:
    coords = np.array([[0, 0], [512, 0], [1024, 2048]], np.int64)
    path = tmp_path / "s.h5"
    write_coords(path, coords, {**ATTRS, "mpp_source": "objective-power", "unused": None})
    got, attrs = read_coords(path)
    assert got.dtype == np.int32 and got.tolist() == coords.tolist()
    assert {k: attrs[k] for k in ATTRS} == ATTRS
    assert attrs["mpp_source"] == "objective-power" and "unused" not in attrs
    with h5py.File(path) as fh:  # where CLAM's extract_features_fp looks
        assert fh["coords"].dtype == np.int32
        assert int(fh["coords"].attrs["patch_size"]) == 512 and int(fh["coords"].attrs["patch_level"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no temp file left behind


def test_empty_coords(tmp_path: Path) -> None:
    write_coords(tmp_path / "e.h5", np.zeros((0, 2), np.int32), ATTRS)
    got, _ = read_coords(tmp_path / "e.h5")
    assert got.shape == (0, 2)


def test_reads_real_clam_file() -> None:
    coords, attrs = read_coords(CLAM_H5)
    assert coords.shape == (7822, 2) and coords.dtype == np.int32
    assert attrs["patch_size"] == 256 and attrs["patch_level"] == 0
    assert attrs["level_dim"] == [35492, 30366] and attrs["downsample"] == [1.0, 1.0]
    assert all(attrs[k] is None for k in ("target_mpp", "tile_px", "slide_mpp", "tissue_threshold",
                                         "histcode_version"))
    assert (coords >= 0).all() and (coords[:, 0] < 35492).all() and (coords[:, 1] < 30366).all()


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(CoordsError, match=r"shape \(N, 2\)"):
        write_coords(tmp_path / "a.h5", np.zeros((3, 3)), ATTRS)
    with pytest.raises(CoordsError, match=r"missing \['slide_mpp'\]"):
        write_coords(tmp_path / "a.h5", np.zeros((3, 2)), {k: v for k, v in ATTRS.items() if k != "slide_mpp"})
    with pytest.raises(CoordsError, match="not found; run the tile stage"):
        read_coords(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "f.h5", "w") as fh:
        fh["features"] = np.zeros((2, 4))
    with pytest.raises(CoordsError, match=r"f\.h5: no 'coords' dataset"):
        read_coords(tmp_path / "f.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(CoordsError, match=r"junk\.h5: unreadable HDF5"):
        read_coords(tmp_path / "junk.h5")
