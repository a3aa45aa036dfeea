"""Stain normalisation: Macenko, Reinhard or none; fitted once on the train cohort, applied on the fly.

``create_normalizer(method)`` builds one by name, ``save_normalizer``/``load_normalizer`` move the fitted
reference through JSON (``data/stain/reference.json``). Every normaliser has ``fit(images)``,
``transform(img (H, W, 3) uint8) -> uint8`` and the vectorised ``transform_batch(x (B, 3, H, W) float in
[0, 1]) -> same`` for DataLoader workers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from histcode.atomic import write_json
from histcode.slides.stain.base import StainNormalizer, check_batch, from_batch, to_batch
from histcode.slides.stain.macenko import MacenkoNormalizer
from histcode.slides.stain.reinhard import ReinhardNormalizer


class IdentityNormalizer:
    """``none``: returns tiles unchanged (keeps the same interface so callers need no special case)."""

    method: ClassVar[str] = "none"
    fitted = True

    def fit(self, images: np.ndarray | Sequence[np.ndarray]) -> Self:
        return self

    def transform(self, img: np.ndarray) -> np.ndarray:
        return from_batch(self.transform_batch(to_batch(img)))

    def transform_batch(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x)
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls()


NORMALIZERS: dict[str, type] = {
    "macenko": MacenkoNormalizer,
    "reinhard": ReinhardNormalizer,
    "none": IdentityNormalizer,
}


def create_normalizer(method: str, **kwargs: Any) -> StainNormalizer:
    """Build an unfitted normaliser by name (``macenko``, ``reinhard``, ``none``)."""
    key = method.lower().strip()
    if key == "identity":
        key = "none"
    if key not in NORMALIZERS:
        raise ValueError(f"unknown stain normalisation method {method!r}; valid: {sorted(NORMALIZERS)}")
    return NORMALIZERS[key](**kwargs)


def save_normalizer(norm: StainNormalizer, json_path: str | Path) -> None:
    """Write the normaliser's reference as JSON (atomic)."""
    write_json(json_path, norm.to_dict())


def load_normalizer(json_path: str | Path) -> StainNormalizer:
    """Read a normaliser saved by ``save_normalizer`` (e.g. ``data/stain/reference.json``)."""
    path = Path(json_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: stain reference not found; run the stain_ref stage (dvc repro "
                                "stain_ref) or set stain.method: none.")
    try:
        data = json.loads(path.read_text())
        cls = NORMALIZERS[data["method"]]
        return cls.from_dict(data)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid stain reference ({type(exc).__name__}: {exc}); delete it and "
                         f"re-run stain_ref. Valid methods: {sorted(NORMALIZERS)}") from exc


__all__ = [
    "NORMALIZERS",
    "IdentityNormalizer",
    "MacenkoNormalizer",
    "ReinhardNormalizer",
    "StainNormalizer",
    "create_normalizer",
    "load_normalizer",
    "save_normalizer",
]
