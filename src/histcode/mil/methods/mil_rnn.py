"""MIL-RNN (Campanella et al. 2019, Nat. Med. 25:1301): max-pooling MIL tile classifier + RNN aggregator.

Tile classifier: p_i = softmax(W e_i)₁ (P(tumour) of a tile). Its MIL loss is max-pooling MIL: the
cross-entropy of the slide label on the tile of highest p_i. The S tiles of highest p_i (S = 10 in the
paper), ordered by decreasing p_i, feed a ReLU Elman RNN h_t = relu(W_x x_t + W_h h_{t-1}); the slide
prediction is softmax(W_o h_S). As in the paper's second step the RNN sees the tile embeddings detached
(its loss does not train the tile classifier) and the selection is not differentiated; both steps train in
one loop (loss = max-pooling MIL + RNN cross-entropy) rather than one after the other.
Per-tile ``scores`` are the tile log-odds, ``weights`` p_i / Σ p.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from histcode.mil.pool_base import Pooling, PoolOutput, check_bag, register_pooling


def top_s(p: Tensor, s: int) -> Tensor:
    """Indices of the ``s`` highest values of ``p`` (all if fewer), in decreasing order."""
    return torch.topk(p, min(s, p.shape[0]), sorted=True).indices


@register_pooling("mil_rnn")
class MilRNN(Pooling):
    """Campanella et al. MIL-RNN (see module docstring)."""

    def __init__(
        self, in_dim: int, *, hidden: int = 512, attn_hidden: int = 128, dropout: float = 0.0, top_s: int = 10
    ) -> None:
        super().__init__(in_dim, hidden=hidden, dropout=dropout)
        if top_s <= 0:
            raise ValueError(f"top_s must be positive, got {top_s}")
        self.top_s, self.attn_hidden = top_s, attn_hidden
        self.tile_classifier = nn.Linear(hidden, 2)
        self.rnn = nn.RNN(hidden, attn_hidden, nonlinearity="relu", batch_first=True)
        self.out_dim = attn_hidden  # the RNN state is what MilClassifier.head classifies

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "attn_hidden": self.attn_hidden, "top_s": self.top_s}

    def _finish(self, scores: Tensor, top_e: Tensor, top_logits: Tensor) -> PoolOutput:
        _, state = self.rnn(top_e[None])
        p = torch.sigmoid(scores)
        return PoolOutput(
            pooled=state[0, 0], scores=scores, weights=p / p.sum(), extra={"max_logits": top_logits}
        )

    def forward(self, h: Tensor) -> PoolOutput:
        e = self.embed(check_bag(h, self.in_dim))
        logits = self.tile_classifier(e)
        scores = logits[:, 1] - logits[:, 0]  # log-odds: same order as p_i
        idx = top_s(scores.detach(), self.top_s)
        out = self._finish(scores, e[idx].detach(), logits[idx[0]])
        out.extra["top"] = idx
        return out

    def loss(self, out: PoolOutput, head: nn.Module, label: int) -> Tensor:
        y = torch.tensor([label])
        mil = F.cross_entropy(out.extra["max_logits"].unsqueeze(0), y)  # max-pooling MIL on the top tile
        return mil + F.cross_entropy(head(out.pooled).unsqueeze(0), y)

    @torch.no_grad()
    def forward_stream(self, chunks: Iterable[Tensor]) -> PoolOutput:
        """One pass: all tile scores plus a running top-S buffer of (score, embedding, logits)."""
        scores: list[Tensor] = []
        buf_s = buf_e = buf_l = None
        for chunk in chunks:
            e = self.embed(check_bag(chunk, self.in_dim))
            logits = self.tile_classifier(e)
            s = logits[:, 1] - logits[:, 0]
            scores.append(s)
            cand_s = s if buf_s is None else torch.cat([buf_s, s])
            cand_e = e if buf_e is None else torch.cat([buf_e, e])
            cand_l = logits if buf_l is None else torch.cat([buf_l, logits])
            keep = top_s(cand_s, self.top_s)
            buf_s, buf_e, buf_l = cand_s[keep], cand_e[keep], cand_l[keep]
            del e, logits, cand_e, cand_l
        if buf_s is None or buf_e is None or buf_l is None:
            raise ValueError("empty bag: a slide needs at least one tile feature")
        return self._finish(torch.cat(scores), buf_e, buf_l[0])
