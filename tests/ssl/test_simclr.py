"""NT-Xent against a direct NumPy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from histcode.ssl.simclr import NTXentLoss


def _numpy_ntxent(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    z = np.concatenate([z1, z2])
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        denom = sum(np.exp(z[i] @ z[j] / tau) for j in range(n2) if j != i)
        total += -np.log(np.exp(z[i] @ z[pos] / tau) / denom)
    return total / n2


def test_ntxent_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    z1, z2 = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    z1 /= np.linalg.norm(z1, axis=1, keepdims=True)
    z2 /= np.linalg.norm(z2, axis=1, keepdims=True)
    got = NTXentLoss(0.2)(torch.tensor(z1, dtype=torch.float32), torch.tensor(z2, dtype=torch.float32))
    assert got.item() == pytest.approx(_numpy_ntxent(z1, z2, 0.2), rel=1e-5)


def test_ntxent_is_low_for_identical_views_and_checks_input() -> None:
    z = torch.nn.functional.normalize(torch.eye(6)[:4], dim=1)
    assert NTXentLoss(0.05)(z, z).item() < 1e-6 + np.log(1 + 6 * np.exp(-1 / 0.05))
    with pytest.raises(ValueError, match="two"):
        NTXentLoss(0.1)(torch.randn(1, 3), torch.randn(1, 3))
