"""Tracking tests build throwaway projects under tmp_path; MLFLOW_TRACKING_URI starts unset (project store)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; monkeypatch restores the original state afterwards
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(var, raising=False)


class Linear4(torch.nn.Module):
    """A 4-feature logistic model, enough to register and reload."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(x)).squeeze(-1)


@pytest.fixture
def linear4():  # type: ignore[no-untyped-def]
    return Linear4
