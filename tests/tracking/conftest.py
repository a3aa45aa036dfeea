"""Tracking tests build throwaway projects under tmp_path; MLFLOW_TRACKING_URI starts unset (project store)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; monkeypatch restores the original state afterwards
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(var, raising=False)


def Linear4(seed: int) -> torch.nn.Module:
    """A seeded MIL classifier on 4-d tile features: small, and a kind the registry can rebuild safely."""
    from histcode.mil.model import build_mil

    torch.manual_seed(seed)
    return build_mil({"pooling": "gated_attention", "in_dim": 4, "hidden": 8, "attn_hidden": 4}).eval()


@pytest.fixture
def linear4():  # type: ignore[no-untyped-def]
    return Linear4
