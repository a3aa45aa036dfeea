"""Training checkpoints: one dict (networks, bank, optimisers, scheduler, epoch, step, RNG, config),
written atomically so an interrupted save never corrupts the last good checkpoint."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histcode.atomic import save_torch

# Keys that may differ between the interrupted and the resumed run without changing the maths.
OPERATIONAL_KEYS = frozenset({"workers", "threads", "progress", "log_every", "max_bad_tile_frac"})


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` atomically and byte-reproducibly (adds the RNG state)."""
    save_torch(path, {**state, "rng": rng_state()})


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise RuntimeError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); delete it to restart "
                           "pretraining from scratch.") from exc


def check_compatible(path: str | Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """A resume must continue the same run: every non-operational config key must match."""
    diff = sorted(k for k in set(saved) | set(current)
                  if k not in OPERATIONAL_KEYS and saved.get(k) != current.get(k))
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} → {current.get(k)!r}" for k in diff)
        raise ValueError(f"{path}: checkpoint was written with a different pretrain config ({detail}); "
                         "restore those params to resume, or delete the checkpoint to start over.")
