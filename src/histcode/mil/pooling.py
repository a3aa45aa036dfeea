"""MIL methods (bag poolings) by name: the door the project builds them through. Gated attention, ABMIL, mean and
max (``histcode.mil.methods.basic``), CLAM-SB, DSMIL, MIL-RNN and TransMIL (one module each in
``histcode.mil.methods``), all registered in ``histcode.mil.pool_base``.
"""

from __future__ import annotations

import inspect
from typing import Any

from histcode.mil import methods as _methods  # noqa: F401  (importing the package registers every method)
from histcode.mil.pool_base import POOLINGS, Pooling


def pooling_names() -> list[str]:
    """Every registered method's name (what ``mil.pooling`` / ``mil.baselines`` accept)."""
    return sorted(POOLINGS)


def create_pooling(name: str, in_dim: int, **cfg: Any) -> Pooling:
    """Build pooling ``name``; keyword settings a pooling does not use (e.g. ``attn_hidden`` for mean) are
    dropped, keys no pooling knows raise."""
    if name not in POOLINGS:
        raise ValueError(
            f"unknown MIL method {name!r}; valid names: {pooling_names()} "
            "(params.yaml mil.pooling / mil.baselines)"
        )
    known = {p for c in POOLINGS.values() for p in inspect.signature(c.__init__).parameters} - {
        "self",
        "in_dim",
    } | {"n_classes"}
    unknown = set(cfg) - known
    if unknown:
        raise ValueError(
            f"create_pooling({name!r}): unknown setting(s) {sorted(unknown)}; valid: {sorted(known)}"
        )
    cls = POOLINGS[name]
    accepted = set(inspect.signature(cls.__init__).parameters)
    return cls(in_dim, **{k: v for k, v in cfg.items() if k in accepted})
