"""Projection head and the encoder+head network shared by AdCo (query/key) and SimCLR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """MoCo-v2 style MLP: (B, D) → Linear(D, hidden) → ReLU → Linear(hidden, out) → (B, out).

    HistCode uses 1024 → 1024 → 128; the CPU demo shrinks ``hidden``.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        if min(in_dim, hidden, out_dim) < 1:
            raise ValueError(f"ProjectionHead dims must be positive, got {in_dim}, {hidden}, {out_dim}")
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ProjectedEncoder(nn.Module):
    """encoder → head → L2 normalise: (B, 3, H, W) → (B, out_dim) unit vectors (computed in float32)."""

    def __init__(self, encoder: nn.Module, head: ProjectionHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.encoder(x))
        return F.normalize(z.float(), dim=1)


@torch.no_grad()
def momentum_update(key: nn.Module, query: nn.Module, m: float) -> None:
    """key ← m·key + (1 − m)·query for every parameter (buffers such as BN stats are the key's own)."""
    key_params = list(key.parameters())
    query_params = list(query.parameters())
    if len(key_params) != len(query_params):
        raise ValueError("momentum_update: key and query networks differ in structure")
    torch._foreach_mul_(key_params, m)
    torch._foreach_add_(key_params, [q.detach() for q in query_params], alpha=1.0 - m)
