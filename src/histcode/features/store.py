"""Features store (DESIGN §4): ``features/<cohort>/<encoder>/<slide_id>.h5``.

Datasets ``features`` (N, D) float16/float32 and ``coords`` (N, 2) int32 (level-0 top-left, same order);
attrs ``encoder``, ``encoder_uri``, ``dim``, ``tile_px``, ``target_mpp`` (+ extras). ``FeatureWriter``
streams rows into a temp file renamed into place on success, so memory stays flat for any slide size and a
crash never leaves a half-written file that resume would mistake for a finished slide.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

REQUIRED_ATTRS = ("encoder", "encoder_uri", "dim", "tile_px", "target_mpp")


class FeaturesError(ValueError):
    """A features file is missing, malformed or lacks required attributes."""


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


class FeatureWriter:
    """Append (b, D) feature rows and (b, 2) coords; ``commit`` on clean exit, discard on error/``abort``."""

    def __init__(self, path: str | Path, *, n_max: int, dim: int, dtype: str, attrs: dict[str, Any]) -> None:
        import h5py

        missing = [k for k in REQUIRED_ATTRS if attrs.get(k) is None]
        if missing:
            raise FeaturesError(f"{path}: features attrs missing {missing}; pass them to the writer.")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        self.n = 0
        self.dim = dim
        self._fh = h5py.File(self.tmp, "w")
        rows = max(1, min(n_max, 4096))
        self._feat = self._fh.create_dataset("features", shape=(n_max, dim), maxshape=(None, dim),
                                             dtype=np.dtype(dtype), chunks=(rows, dim))
        self._coords = self._fh.create_dataset("coords", shape=(n_max, 2), maxshape=(None, 2), dtype=np.int32,
                                               chunks=(rows, 2))
        for k, v in attrs.items():
            if v is not None:
                self._fh.attrs[k] = v
        self._done = False

    def write(self, features: np.ndarray, coords: np.ndarray) -> None:
        b = features.shape[0]
        if features.ndim != 2 or features.shape[1] != self.dim or coords.shape != (b, 2):
            raise FeaturesError(f"{self.path}: expected features (b, {self.dim}) and coords (b, 2), got "
                                f"{features.shape} and {coords.shape}")
        end = self.n + b
        if end > self._feat.shape[0]:
            self._feat.resize((end, self.dim))
            self._coords.resize((end, 2))
        self._feat[self.n:end] = features
        self._coords[self.n:end] = coords
        self.n = end

    def commit(self, **extra_attrs: Any) -> Path:
        try:
            self._feat.resize((self.n, self.dim))
            self._coords.resize((self.n, 2))
            for k, v in extra_attrs.items():
                self._fh.attrs[k] = v
            self._fh.close()
        except Exception:
            self.abort()
            raise
        os.replace(self.tmp, self.path)
        self._done = True
        return self.path

    def abort(self) -> None:
        """Drop the temp file, even when closing it fails (e.g. HDF5 cannot flush on a full disk)."""
        if not self._done:
            self._done = True
            try:
                self._fh.close()
            except Exception:
                pass
            finally:
                self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None and not self._done:
            self.commit()
        else:
            self.abort()


def write_features(path: str | Path, features: np.ndarray, coords: np.ndarray, attrs: dict[str, Any], *,
                   dtype: str = "float32") -> Path:
    """Write whole arrays (N, D) and (N, 2) atomically; ``attrs`` must hold ``REQUIRED_ATTRS``."""
    features = np.asarray(features)
    with FeatureWriter(path, n_max=features.shape[0], dim=features.shape[1], dtype=dtype, attrs=attrs) as w:
        w.write(features, np.asarray(coords, dtype=np.int32))
    return Path(path)


def read_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """→ (features (N, D) as stored, coords (N, 2) int32, attrs as plain Python)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise FeaturesError(f"{path}: features file not found; run `histcode extract` (dvc repro extract) first.")
    try:
        with h5py.File(path, "r") as fh:
            if "features" not in fh or "coords" not in fh:
                raise FeaturesError(f"{path}: needs datasets 'features' and 'coords' (has {sorted(fh.keys())}); "
                                    "delete it and re-run extraction.")
            feats = np.asarray(fh["features"][()])
            coords = np.asarray(fh["coords"][()]).astype(np.int32, copy=False)
            attrs = {k: _plain(v) for k, v in fh.attrs.items()}
    except OSError as exc:
        raise FeaturesError(f"{path}: unreadable HDF5 ({exc}); delete it and re-run extraction.") from exc
    if feats.ndim != 2 or coords.shape != (feats.shape[0], 2):
        raise FeaturesError(f"{path}: features {feats.shape} and coords {coords.shape} do not match.")
    if attrs.get("dim") is not None and int(attrs["dim"]) != feats.shape[1]:
        raise FeaturesError(f"{path}: attr dim={attrs['dim']} but features have {feats.shape[1]} columns.")
    return feats, coords, attrs


def read_attrs(path: str | Path) -> dict[str, Any]:
    """Only the attributes (which encoder, settings) of a features file, without reading the arrays."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return {k: _plain(v) for k, v in fh.attrs.items()}
    except OSError as exc:
        raise FeaturesError(f"{path}: unreadable HDF5 ({exc}); delete it and re-run extraction.") from exc
