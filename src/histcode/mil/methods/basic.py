"""The basic MIL poolings: gated attention (HistCode's), ABMIL, mean and max pooling (the paper's baselines)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from histcode.mil.dropout import MaskDropout
from histcode.mil.pool_base import Pooling, PoolOutput, check_bag, register_pooling


class _AttentionStream(Pooling):
    """Attention pooling a = softmax(wᵀ(tanh(V e) [⊙ σ(U e)])), z = Σ a e, gated or not (``gated``), with
    streaming by the online softmax: running max, normaliser and weighted sum, rescaled when the max grows,
    so pooled = Σ softmax(s)_i e_i chunk by chunk. V (and U): hidden → attn_hidden; w: attn_hidden → 1."""

    gated: bool = False

    def __init__(
        self, in_dim: int, *, hidden: int = 512, attn_hidden: int = 256, dropout: float = 0.0
    ) -> None:
        super().__init__(in_dim, hidden=hidden, dropout=dropout)
        if attn_hidden <= 0:
            raise ValueError(f"attn_hidden must be positive, got {attn_hidden}")
        self.attn_hidden = attn_hidden
        self.attn_v = nn.Sequential(nn.Linear(hidden, attn_hidden), nn.Tanh(), MaskDropout(dropout))
        if self.gated:  # created between V and w: the seeded initialisation stays what it was
            self.attn_u = nn.Sequential(nn.Linear(hidden, attn_hidden), nn.Sigmoid(), MaskDropout(dropout))
        self.attn_w = nn.Linear(attn_hidden, 1)

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "attn_hidden": self.attn_hidden}

    def score(self, e: Tensor) -> Tensor:
        """(N, hidden) → (N,) raw attention scores."""
        v = self.attn_v(e)
        return self.attn_w(v * self.attn_u(e) if self.gated else v).squeeze(-1)

    def forward(self, h: Tensor) -> PoolOutput:
        e = self.embed(check_bag(h, self.in_dim))
        s = self.score(e)
        a = torch.softmax(s, dim=0)
        return PoolOutput(pooled=a @ e, scores=s, weights=a, extra={"embedded": e})

    def _stream_update(self, state: dict[str, Any] | None, e: Tensor, offset: int) -> dict[str, Any]:
        s = self.score(e)
        m = s.max()
        if state is None:
            return {"scores": [s], "m": m, "z": torch.exp(s - m).sum(), "acc": torch.exp(s - m) @ e}
        new_m = torch.maximum(state["m"], m)
        scale = torch.exp(state["m"] - new_m)
        p = torch.exp(s - new_m)
        state["scores"].append(s)
        state["z"] = state["z"] * scale + p.sum()
        state["acc"] = state["acc"] * scale + p @ e
        state["m"] = new_m
        return state

    def _stream_finish(self, state: dict[str, Any], n: int) -> PoolOutput:
        s = torch.cat(state["scores"])
        return PoolOutput(pooled=state["acc"] / state["z"], scores=s, weights=torch.softmax(s, dim=0))


@register_pooling("gated_attention")
class GatedAttentionPool(_AttentionStream):
    """Ilse et al. 2018 gated attention: a_i = softmax_i(wᵀ(tanh(V e_i) ⊙ sigm(U e_i))), z = Σ a_i e_i.

    e_i (N, hidden) are the embedded tiles; V, U: hidden → attn_hidden; w: attn_hidden → 1 (CLAM-small:
    1024 → 512, attention 512 → 256 → 1). ``scores`` are the pre-softmax values wᵀ(...).
    """

    gated = True


@register_pooling("abmil")
class AttentionPool(_AttentionStream):
    """Ilse, Tomczak & Welling 2018 (ABMIL, non-gated): a_i = softmax_i(wᵀ tanh(V e_i)), z = Σ a_i e_i.

    The gate-free variant of ``gated_attention``: V: hidden → attn_hidden, w: attn_hidden → 1.
    """


@register_pooling("mean")
class MeanPool(Pooling):
    """Mean-pooling MIL baseline: z = mean_i e_i; every tile weighs 1/N (scores are zeros)."""

    def forward(self, h: Tensor) -> PoolOutput:
        e = self.embed(check_bag(h, self.in_dim))
        n = e.shape[0]
        return PoolOutput(pooled=e.mean(0), scores=e.new_zeros(n), weights=e.new_full((n,), 1.0 / n))

    def _stream_update(self, state: dict[str, Any] | None, e: Tensor, offset: int) -> dict[str, Any]:
        if state is None:
            return {"sum": e.sum(0)}
        state["sum"] = state["sum"] + e.sum(0)
        return state

    def _stream_finish(self, state: dict[str, Any], n: int) -> PoolOutput:
        s = state["sum"]
        return PoolOutput(pooled=s / n, scores=s.new_zeros(n), weights=s.new_full((n,), 1.0 / n))


@register_pooling("max")
class MaxPool(Pooling):
    """Max-pooling MIL baseline (element-wise): z_k = max_i e_ik.

    A tile's score is the number of feature dimensions it wins (its share of z);
    weights are those counts normalised to sum 1, which is what heatmaps of max pooling show."""

    def forward(self, h: Tensor) -> PoolOutput:
        e = self.embed(check_bag(h, self.in_dim))
        pooled, idx = e.max(dim=0)
        counts = torch.bincount(idx, minlength=e.shape[0]).to(e.dtype)
        return PoolOutput(pooled=pooled, scores=counts, weights=counts / counts.sum())

    def _stream_update(self, state: dict[str, Any] | None, e: Tensor, offset: int) -> dict[str, Any]:
        m, idx = e.max(dim=0)
        if state is None:
            return {"max": m, "idx": idx + offset}
        better = m > state["max"]
        state["max"] = torch.where(better, m, state["max"])
        state["idx"] = torch.where(better, idx + offset, state["idx"])
        return state

    def _stream_finish(self, state: dict[str, Any], n: int) -> PoolOutput:
        counts = torch.bincount(state["idx"], minlength=n).to(state["max"].dtype)
        return PoolOutput(pooled=state["max"], scores=counts, weights=counts / counts.sum())
