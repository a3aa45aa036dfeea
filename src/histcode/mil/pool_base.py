"""The contract every MIL method (bag pooling) meets, and the registry that names them.

A pooling embeds each tile feature (``Linear → ReLU → Dropout``, CLAM's ``fc`` layer) and reduces the bag to one
vector, returning a ``PoolOutput`` (pooled vector, per-tile raw scores, per-tile weights summing to 1), so the
classifier, attention export and heatmaps treat every method alike. Methods live in ``histcode.mil.methods``
(one module per paper) and register themselves here with ``@register_pooling``; ``histcode.mil.pooling`` is the
door the rest of the project builds them through. Kept apart from that door so the methods import only this
contract, never the module that imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from histcode.mil.dropout import MaskDropout


@dataclass
class PoolOutput:
    """pooled (H,), scores (N,) pre-normalisation per-tile scores, weights (N,) non-negative, sum 1."""

    pooled: Tensor
    scores: Tensor
    weights: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)  # method-specific tensors its loss/logits need


POOLINGS: dict[str, type[Pooling]] = {}


def register_pooling(name: str) -> Callable[[type[Pooling]], type[Pooling]]:
    def deco(cls: type[Pooling]) -> type[Pooling]:
        cls.name = name
        POOLINGS[name] = cls
        return cls

    return deco



def check_bag(h: Tensor, in_dim: int) -> Tensor:
    """A bag as (N, in_dim) float32 (a leading batch dimension of 1 dropped); a one-line error otherwise."""
    if h.dim() == 3 and h.shape[0] == 1:
        h = h[0]
    if h.dim() != 2 or h.shape[1] != in_dim:
        raise ValueError(f"expected a bag of shape (N, {in_dim}), got {tuple(h.shape)}")
    if h.shape[0] == 0:
        raise ValueError("empty bag: a slide needs at least one tile feature")
    return h.float()


class Pooling(nn.Module):
    """Base: tile embedding + a bag reduction. Subclasses implement ``forward`` and the streaming triple."""

    name: ClassVar[str] = ""

    def __init__(self, in_dim: int, *, hidden: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        if in_dim <= 0 or hidden <= 0:
            raise ValueError(f"in_dim and hidden must be positive, got {in_dim}, {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_dim = in_dim
        self.out_dim = hidden
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), MaskDropout(dropout))

    def forward(self, h: Tensor) -> PoolOutput:
        raise TypeError(f"{type(self).__name__} must implement forward")

    def hparams(self) -> dict[str, Any]:
        return {"hidden": int(self.embed[0].out_features), "dropout": float(self.embed[2].p)}

    def bag_logits(self, out: PoolOutput, head: nn.Module) -> Tensor:
        """(C,) slide logits; softmax of them is the prediction. Default: the linear head on the pooled vector."""
        return head(out.pooled)  # type: ignore[no-any-return]

    def loss(self, out: PoolOutput, head: nn.Module, label: int) -> Tensor:
        """Training loss of one bag with slide label ``label``. Default: cross-entropy of ``bag_logits``."""
        return F.cross_entropy(self.bag_logits(out, head).unsqueeze(0), torch.tensor([label]))

    @torch.no_grad()
    def forward_stream(self, chunks: Iterable[Tensor]) -> PoolOutput:
        """Same result as ``forward`` on the concatenated chunks (eval mode), one chunk in memory at a time."""
        state: dict[str, Any] | None = None
        n = 0
        for chunk in chunks:
            h = check_bag(chunk, self.in_dim)
            del chunk  # drop references before the next chunk is read: peak = one chunk's buffers
            state = self._stream_update(state, self.embed(h), n)
            n += h.shape[0]
            del h
        if state is None:
            raise ValueError("empty bag: a slide needs at least one tile feature")
        return self._stream_finish(state, n)

    def _stream_update(self, state: dict[str, Any] | None, e: Tensor, offset: int) -> dict[str, Any]:
        raise TypeError(f"{type(self).__name__} must implement streaming")

    def _stream_finish(self, state: dict[str, Any], n: int) -> PoolOutput:
        raise TypeError(f"{type(self).__name__} must implement streaming")
