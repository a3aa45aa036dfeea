"""MIL methods (bag poolings) behind a name → class registry: gated attention, ABMIL, mean, max here; CLAM-SB,
DSMIL, MIL-RNN and TransMIL in ``histcode.mil.methods``.

Every pooling first embeds each tile feature (``Linear → ReLU → Dropout``, CLAM's ``fc`` layer: 1024 → 512
for the paper, smaller for the CPU demo) and then reduces the bag to one vector. All of them return the
same ``PoolOutput`` (pooled vector, per-tile raw scores, per-tile weights summing to 1) so the classifier,
attention export and heatmaps treat them alike. ``forward_stream`` reduces a bag given as chunks, so
inference on a 100k-tile bag holds one chunk of activations at a time (two passes over the chunks for
methods that need a bag-level quantity first, e.g. DSMIL's critical instance: pass a re-iterable).

A method whose prediction is more than ``head(pooled)`` (DSMIL, MIL-RNN) overrides ``bag_logits``; one with
extra training terms (CLAM's instance loss, DSMIL's max-instance loss) overrides ``loss``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class PoolOutput:
    """pooled (H,), scores (N,) pre-normalisation per-tile scores, weights (N,) non-negative, sum 1."""

    pooled: Tensor
    scores: Tensor
    weights: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)  # method-specific tensors its loss/logits need


_POOLINGS: dict[str, type[Pooling]] = {}


def register_pooling(name: str) -> Callable[[type[Pooling]], type[Pooling]]:
    def deco(cls: type[Pooling]) -> type[Pooling]:
        cls.name = name
        _POOLINGS[name] = cls
        return cls

    return deco


def pooling_names() -> list[str]:
    return sorted(_POOLINGS)


def create_pooling(name: str, in_dim: int, **cfg: Any) -> Pooling:
    """Build pooling ``name``; keyword settings a pooling does not use (e.g. ``attn_hidden`` for mean) are
    dropped, keys no pooling knows raise."""
    if name not in _POOLINGS:
        raise ValueError(
            f"unknown MIL method {name!r}; valid names: {pooling_names()} "
            "(params.yaml mil.pooling / mil.baselines)"
        )
    known = {p for c in _POOLINGS.values() for p in inspect.signature(c.__init__).parameters} - {
        "self",
        "in_dim",
    } | {"n_classes"}
    unknown = set(cfg) - known
    if unknown:
        raise ValueError(
            f"create_pooling({name!r}): unknown setting(s) {sorted(unknown)}; valid: {sorted(known)}"
        )
    cls = _POOLINGS[name]
    accepted = set(inspect.signature(cls.__init__).parameters)
    return cls(in_dim, **{k: v for k, v in cfg.items() if k in accepted})


def _check_bag(h: Tensor, in_dim: int) -> Tensor:
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
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))

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
            h = _check_bag(chunk, self.in_dim)
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
        self.attn_v = nn.Sequential(nn.Linear(hidden, attn_hidden), nn.Tanh(), nn.Dropout(dropout))
        if self.gated:  # created between V and w: the seeded initialisation stays what it was
            self.attn_u = nn.Sequential(nn.Linear(hidden, attn_hidden), nn.Sigmoid(), nn.Dropout(dropout))
        self.attn_w = nn.Linear(attn_hidden, 1)

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "attn_hidden": self.attn_hidden}

    def score(self, e: Tensor) -> Tensor:
        """(N, hidden) → (N,) raw attention scores."""
        v = self.attn_v(e)
        return self.attn_w(v * self.attn_u(e) if self.gated else v).squeeze(-1)

    def forward(self, h: Tensor) -> PoolOutput:
        e = self.embed(_check_bag(h, self.in_dim))
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
        e = self.embed(_check_bag(h, self.in_dim))
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
        e = self.embed(_check_bag(h, self.in_dim))
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


from histcode.mil import methods as _methods  # noqa: E402,F401  (registers clam_sb, dsmil, mil_rnn, transmil)
