"""Tile-coordinate store (DESIGN §4): ``<slide_id>.h5`` with dataset ``coords`` int32 (N, 2).

Attributes live on the ``coords`` dataset exactly where CLAM puts them (``patch_size`` in level-0 px,
``patch_level``, ``downsample``, ``level_dim``), so CLAM's feature extraction reads our files; HistCode's
own units (``target_mpp``, ``tile_px``, ``slide_mpp``, ``tissue_threshold``, ``histcode_version``) sit
beside them and are checked by later stages. Files from CLAM itself read too (missing keys → None).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from histcode.atomic import atomic_path
from histcode.errors import HistcodeError
from histcode.io.h5attrs import plain

CLAM_KEYS = ("patch_size", "patch_level", "downsample", "level_dim")
HISTCODE_KEYS = ("target_mpp", "tile_px", "slide_mpp", "tissue_threshold", "histcode_version")
REQUIRED_WRITE_KEYS = (*CLAM_KEYS, "target_mpp", "tile_px", "slide_mpp")


class CoordsError(HistcodeError, ValueError):
    """A coords file is missing, malformed or lacks required attributes."""


def write_coords(path: str | Path, coords: np.ndarray, attrs: dict[str, Any]) -> None:
    """Write coords (N, 2) level-0 top-left (x, y) and attrs atomically (None-valued attrs are omitted)."""
    import h5py

    path = Path(path)
    arr = np.asarray(coords)
    if arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise CoordsError(f"{path}: coords must have shape (N, 2), got {arr.shape}.")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(arr == np.round(arr)):
        raise CoordsError(f"{path}: coords must be whole level-0 pixels, got fractional values.")
    missing = [k for k in REQUIRED_WRITE_KEYS if attrs.get(k) is None]
    if missing:
        raise CoordsError(f"{path}: coords attrs missing {missing}; pass them to write_coords.")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        ds = fh.create_dataset("coords", data=arr.astype(np.int32), maxshape=(None, 2), chunks=True)
        for key, value in attrs.items():
            if value is None:
                continue
            ds.attrs[key] = np.asarray(value) if isinstance(value, list | tuple) else value


def read_coords(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a coords file (ours or CLAM's): ((N, 2) int32 level-0 (x, y), attrs as plain Python).

    Every key of ``CLAM_KEYS`` and ``HISTCODE_KEYS`` is present in the returned attrs (None if the file
    lacks it); attributes on the file root are merged in under dataset attributes.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise CoordsError(f"{path}: coords file not found; run the tile stage for this cohort first.")
    try:
        with h5py.File(path, "r") as fh:
            if "coords" not in fh:
                raise CoordsError(f"{path}: no 'coords' dataset (keys: {sorted(fh.keys())}); not a tile "
                                  "coords file, re-run tiling.")
            ds = fh["coords"]
            coords = np.asarray(ds[()])
            attrs = {k: plain(v) for k, v in fh.attrs.items()}
            attrs.update({k: plain(v) for k, v in ds.attrs.items()})
    except OSError as exc:
        raise CoordsError(f"{path}: unreadable HDF5 ({exc}); delete it and re-run tiling.") from exc
    if coords.size == 0:
        coords = coords.reshape(0, 2)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise CoordsError(f"{path}: 'coords' has shape {coords.shape}, expected (N, 2).")
    for key in CLAM_KEYS + HISTCODE_KEYS:
        attrs.setdefault(key, None)
    return coords.astype(np.int32, copy=False), attrs
