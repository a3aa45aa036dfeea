"""Features store (DESIGN §4): ``features/<cohort>/<encoder>/<slide_id>.h5``.

Datasets ``features`` (N, D) float16/float32 and ``coords`` (N, 2) int32 (level-0 top-left, same order);
attrs ``encoder``, ``encoder_uri``, ``dim``, ``tile_px``, ``target_mpp`` (+ extras). ``FeatureWriter``
streams rows into a temp file renamed into place on success, so memory stays flat for any slide size and a
crash never leaves a half-written file that resume would mistake for a finished slide.

Interop (the one owner of feature-file formats): ``coords`` carries TRIDENT's attributes (``patch_size``,
``patch_size_level0``, ``level0_magnification``, ``target_magnification``, ``overlap``, ``name``, ``savetodir``)
so TRIDENT slide encoders and CLAM-style readers take our files as they are, and ``read_foreign_features``
reads TRIDENT ``.h5``, CLAM ``h5_files/*.h5`` and CLAM ``pt_files/*.pt`` as (features, coords, attrs).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from histcode.errors import HistcodeError
from histcode.io.h5attrs import plain

REQUIRED_ATTRS = ("encoder", "encoder_uri", "dim", "tile_px", "target_mpp")


class FeaturesError(HistcodeError, ValueError):
    """A features file is missing, malformed or lacks required attributes."""


def trident_coords_attrs(name: str, *, patch_size_level0: int, tile_px: int, target_mpp: float,
                         slide_mpp: float | None, savetodir: str | Path = "") -> dict[str, Any]:
    """TRIDENT's ``coords`` attributes for tiles of ``patch_size_level0`` level-0 px read at ``target_mpp``.

    Magnifications follow the usual 10 µm/px ÷ mpp convention (0.5 µm/px = 20×); TRIDENT's own writer takes
    them from the slide header, which for scanned slides encodes the same mpp."""
    target_mag = 10.0 / target_mpp if target_mpp and target_mpp > 0 else -1
    level0_mag = 10.0 / slide_mpp if slide_mpp and slide_mpp > 0 else (
        target_mag * patch_size_level0 / tile_px if target_mag > 0 and tile_px > 0 else -1)
    return {"patch_size": int(tile_px), "patch_size_level0": int(patch_size_level0),
            "level0_magnification": round(float(level0_mag), 3), "target_magnification": round(float(target_mag), 3),
            "overlap": 0, "name": str(name), "savetodir": str(savetodir)}


class FeatureWriter:
    """Append (b, D) feature rows and (b, 2) coords; ``commit`` on clean exit, discard on error/``abort``.

    ``coords_attrs`` go on the ``coords`` dataset (``trident_coords_attrs``): what TRIDENT/CLAM readers read."""

    def __init__(self, path: str | Path, *, n_max: int, dim: int, dtype: str, attrs: dict[str, Any],
                 coords_attrs: dict[str, Any] | None = None) -> None:
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
        for k, v in (coords_attrs or {}).items():
            self._coords.attrs[k] = v
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
                   dtype: str = "float32", coords_attrs: dict[str, Any] | None = None) -> Path:
    """Write whole arrays (N, D) and (N, 2) atomically; ``attrs`` must hold ``REQUIRED_ATTRS``."""
    features = np.asarray(features)
    with FeatureWriter(path, n_max=features.shape[0], dim=features.shape[1], dtype=dtype, attrs=attrs,
                       coords_attrs=coords_attrs) as w:
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
            attrs = {k: plain(v) for k, v in fh.attrs.items()}
    except OSError as exc:
        raise FeaturesError(f"{path}: unreadable HDF5 ({exc}); delete it and re-run extraction.") from exc
    if feats.ndim != 2 or coords.shape != (feats.shape[0], 2):
        raise FeaturesError(f"{path}: features {feats.shape} and coords {coords.shape} do not match.")
    if attrs.get("dim") is not None and int(attrs["dim"]) != feats.shape[1]:
        raise FeaturesError(f"{path}: attr dim={attrs['dim']} but features have {feats.shape[1]} columns.")
    return feats, coords, attrs


def read_coords_attrs(path: str | Path) -> dict[str, Any]:
    """The ``coords`` dataset's attributes (TRIDENT's units) as plain Python; {} when it has none."""
    import h5py

    with h5py.File(path, "r") as fh:
        return {k: plain(v) for k, v in fh["coords"].attrs.items()} if "coords" in fh else {}


def _clam_coords_for(pt: Path) -> Path | None:
    """CLAM keeps coords of ``pt_files/<slide>.pt`` in ``h5_files/<slide>.h5`` (or ``patches/<slide>.h5``)."""
    for folder in ("h5_files", "patches"):
        cand = pt.parent.parent / folder / f"{pt.stem}.h5"
        if cand.is_file():
            return cand
    return None


def read_foreign_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A TRIDENT or CLAM feature file → (features (N, D) float32, coords (N, 2) int32 level-0, attrs).

    ``attrs`` hold ``format`` (trident | clam_h5 | clam_pt), the ``coords`` attributes found (TRIDENT:
    ``patch_size_level0`` etc.; CLAM patch files: ``patch_size``/``patch_level``) and ``patch_size_level0`` when
    they determine it. A ``(1, N, D)`` array (some CLAM forks) is squeezed."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FeaturesError(f"{path}: feature file not found.")
    attrs: dict[str, Any] = {}
    try:
        if path.suffix == ".pt":
            import torch

            feats = torch.load(path, map_location="cpu", weights_only=True)
            feats = np.asarray(feats.float().numpy() if hasattr(feats, "numpy") else feats, dtype=np.float32)
            src = _clam_coords_for(path)
            if src is None:
                raise FeaturesError(f"{path}: CLAM .pt features carry no coords; put the matching h5_files/"
                                    f"{path.stem}.h5 (or patches/{path.stem}.h5) beside pt_files/.")
            with h5py.File(src, "r") as fh:
                coords = np.asarray(fh["coords"][()])
                attrs.update({k: plain(v) for k, v in fh["coords"].attrs.items()})
            attrs["format"] = "clam_pt"
        else:
            with h5py.File(path, "r") as fh:
                if "features" not in fh or "coords" not in fh:
                    raise FeaturesError(f"{path}: not a TRIDENT/CLAM features file (needs datasets 'features' "
                                        f"and 'coords', has {sorted(fh.keys())}).")
                feats = np.asarray(fh["features"][()], dtype=np.float32)
                coords = np.asarray(fh["coords"][()])
                attrs.update({k: plain(v) for k, v in fh["coords"].attrs.items()})
                attrs.update({f"file_{k}": plain(v) for k, v in fh.attrs.items()})
            attrs["format"] = "trident" if "patch_size_level0" in attrs else "clam_h5"
    except OSError as exc:
        raise FeaturesError(f"{path}: unreadable ({exc}).") from exc
    if feats.ndim == 3 and feats.shape[0] == 1:
        feats = feats[0]
    coords = coords.reshape(-1, 2).astype(np.int32) if coords.size else coords.reshape(0, 2).astype(np.int32)
    if feats.ndim != 2 or coords.shape[0] != feats.shape[0]:
        raise FeaturesError(f"{path}: features {feats.shape} and coords {coords.shape} do not match.")
    if "patch_size_level0" not in attrs and "patch_size" in attrs and "patch_level" in attrs:
        ds = attrs.get("downsample")
        scale = float(np.ravel(ds)[0]) if ds is not None else 2.0 ** int(attrs["patch_level"])
        attrs["patch_size_level0"] = round(int(attrs["patch_size"]) * scale)
    return feats, coords, attrs


def feature_set_identity(features_dir: str | Path) -> dict[str, str]:
    """``encoder``/``encoder_uri``/``encoder_fingerprint`` of a feature set (its first file's attrs), for the tags
    of MLflow runs and registered models trained on it; {} when the folder holds no readable file."""
    import h5py

    for path in sorted(Path(features_dir).glob("*.h5")):
        try:
            with h5py.File(path, "r") as fh:
                return {k: str(plain(fh.attrs[k])) for k in ("encoder", "encoder_uri", "encoder_fingerprint")
                        if k in fh.attrs}
        except OSError:
            continue
    return {}


def read_attrs(path: str | Path) -> dict[str, Any]:
    """Only the attributes (which encoder, settings) of a features file, without reading the arrays."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return {k: plain(v) for k, v in fh.attrs.items()}
    except OSError as exc:
        raise FeaturesError(f"{path}: unreadable HDF5 ({exc}); delete it and re-run extraction.") from exc


def feature_shape(path: str | Path) -> tuple[int, int]:
    """(N, D) of a features file without reading the data."""
    import h5py

    with h5py.File(path, "r") as f:
        n, d = f["features"].shape
    return int(n), int(d)


def checked_shape(path: str | Path) -> tuple[int, int]:
    """(N, D) from the headers only, after checking both datasets exist and their rows match (ValueError; an
    unreadable file raises OSError)."""
    import h5py

    with h5py.File(path, "r") as f:
        if "features" not in f or "coords" not in f:
            raise ValueError("needs datasets 'features' and 'coords'; rerun `dvc repro extract`")
        n, d = f["features"].shape
        if f["coords"].shape != (n, 2):
            raise ValueError(f"features {(n, d)} and coords {f['coords'].shape} do not match")
    return int(n), int(d)


def iter_feature_chunks(path: str | Path, chunk_tiles: int) -> Iterator[np.ndarray]:
    """Yield float32 (≤chunk_tiles, D) row blocks of a file's ``features`` dataset (bounded memory)."""
    import h5py

    if chunk_tiles <= 0:
        raise ValueError(f"chunk_tiles must be positive, got {chunk_tiles}")
    with h5py.File(path, "r") as f:
        ds = f["features"]
        for start in range(0, ds.shape[0], chunk_tiles):
            yield np.asarray(ds[start : start + chunk_tiles], dtype=np.float32)


def read_feature_coords(path: str | Path) -> np.ndarray:
    """The ``coords`` dataset (N, 2) as stored, without reading the features."""
    import h5py

    with h5py.File(path, "r") as f:
        return f["coords"][()]
