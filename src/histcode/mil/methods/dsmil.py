"""DSMIL (Li, Li & Eliceiri, CVPR 2021): dual-stream MIL with a critical instance per class.

Stream 1, max pooling: instance logits c_i = W₀ e_i (C,), critical instance m_k = argmax_i c_ik and the
max-instance prediction ĉ_k = c_{m_k,k}. Stream 2: queries q_i = tanh(W₂ relu(W₁ e_i)); the attention of
every instance to class k's critical instance a_ik = softmax_i(⟨q_i, q_{m_k}⟩ / √d_q); the bag embedding
b_k = Σ_i a_ik e_i (C, hidden) and the bag logits W_b vec(b) (the paper's Conv1d over b). Trained with
½·CE(bag) + ½·CE(ĉ); the prediction is ½·softmax(bag) + ½·softmax(ĉ), as in the reference test code.
Per-tile ``scores``/``weights`` are the tumour stream's ⟨q_i, q_m⟩/√d_q and a_i1.

Streaming takes two passes over the chunks: the first finds the critical instances, the second is an
online softmax of the attention to them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from histcode.mil.pool_base import Pooling, PoolOutput, check_bag, register_pooling


@register_pooling("dsmil")
class DSMIL(Pooling):
    """Dual-stream MIL (see module docstring)."""

    def __init__(
        self, in_dim: int, *, hidden: int = 512, attn_hidden: int = 128, dropout: float = 0.0, n_classes: int = 2
    ) -> None:
        super().__init__(in_dim, hidden=hidden, dropout=dropout)
        self.n_classes, self.attn_hidden = n_classes, attn_hidden
        self.instance_classifier = nn.Linear(hidden, n_classes)
        self.query = nn.Sequential(
            nn.Linear(hidden, attn_hidden), nn.ReLU(), nn.Linear(attn_hidden, attn_hidden), nn.Tanh()
        )
        self.out_dim = n_classes * hidden  # vec(b): the bag classifier (MilClassifier.head) sees all streams

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "attn_hidden": self.attn_hidden}

    def _attend(self, q: Tensor, q_crit: Tensor) -> Tensor:
        return q @ q_crit.T / math.sqrt(q.shape[1])  # (N, C)

    def forward(self, h: Tensor) -> PoolOutput:
        e = self.embed(check_bag(h, self.in_dim))
        c = self.instance_classifier(e)  # (N, C)
        crit = c.argmax(dim=0)  # (C,) critical instance of each class
        q = self.query(e)
        s = self._attend(q, q[crit].detach())
        a = torch.softmax(s, dim=0)
        b = a.T @ e  # (C, hidden)
        max_logits = c.gather(0, crit[None]).squeeze(0)  # (C,)
        return PoolOutput(
            pooled=b.flatten(),
            scores=s[:, -1],
            weights=a[:, -1],
            extra={"max_logits": max_logits, "critical": crit, "attention": a},
        )

    def bag_logits(self, out: PoolOutput, head: nn.Module) -> Tensor:
        prob = 0.5 * torch.softmax(head(out.pooled), 0) + 0.5 * torch.softmax(out.extra["max_logits"], 0)
        return torch.log(prob.clamp_min(1e-12))

    def loss(self, out: PoolOutput, head: nn.Module, label: int) -> Tensor:
        y = torch.tensor([label])
        bag = F.cross_entropy(head(out.pooled).unsqueeze(0), y)
        return 0.5 * bag + 0.5 * F.cross_entropy(out.extra["max_logits"].unsqueeze(0), y)

    @torch.no_grad()
    def forward_stream(self, chunks: Iterable[Tensor]) -> PoolOutput:
        if iter(chunks) is chunks:
            raise TypeError("dsmil streams in two passes: pass a re-iterable of chunks (list, tuple, BagChunks)")
        best = best_q = None
        n = 0
        for chunk in chunks:  # pass 1: the critical instance of each class and its query
            e = self.embed(check_bag(chunk, self.in_dim))
            c = self.instance_classifier(e)
            val, idx = c.max(dim=0)
            if best is None:
                best, best_q = val, self.query(e[idx])
            else:
                better = val > best
                best = torch.where(better, val, best)
                best_q = torch.where(better[:, None], self.query(e[idx]), best_q)
            n += e.shape[0]
        if best is None or best_q is None:
            raise ValueError("empty bag: a slide needs at least one tile feature")
        scores, m, z, acc = [], None, None, None
        for chunk in chunks:  # pass 2: online softmax of the attention to the critical instances
            e = self.embed(check_bag(chunk, self.in_dim))
            s = self._attend(self.query(e), best_q)  # (n, C)
            scores.append(s)
            cm = s.max(dim=0).values
            new_m = cm if m is None else torch.maximum(m, cm)
            p = torch.exp(s - new_m)
            if m is None:
                z, acc = p.sum(0), p.T @ e
            else:
                scale = torch.exp(m - new_m)
                z, acc = z * scale + p.sum(0), acc * scale[:, None] + p.T @ e
            m = new_m
        s_all = torch.cat(scores)
        a = torch.softmax(s_all, dim=0)
        b = acc / z[:, None]
        return PoolOutput(
            pooled=b.flatten(), scores=s_all[:, -1], weights=a[:, -1], extra={"max_logits": best, "attention": a}
        )
