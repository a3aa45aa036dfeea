"""SimCLR NT-Xent loss (Chen et al., 2020): the baseline HistCode compares AdCo against.

For 2N unit embeddings z = [z¹; z²] (views of N tiles) and temperature τ,

    ℓ_i = −log[ exp(z_i·z_{p(i)}/τ) / Σ_{j≠i} exp(z_i·z_j/τ) ],   L = 1/(2N) Σ_i ℓ_i,

where p(i) is the other view of the same tile; every other embedding in the batch is a negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NTXentLoss(nn.Module):
    """forward(z1 (N, d), z2 (N, d)) → scalar; inputs unit-norm (float32), row i of z1 pairs row i of z2."""

    def __init__(self, tau: float) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"NTXentLoss: temperature must be > 0, got {tau}")
        self.tau = tau

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
            raise ValueError(f"NTXentLoss: expected two (N>=2, d) views, got {tuple(z1.shape)}, {tuple(z2.shape)}")
        n = z1.shape[0]
        z = torch.cat([z1, z2], dim=0).float()
        logits = (z @ z.T) / self.tau
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, target)
