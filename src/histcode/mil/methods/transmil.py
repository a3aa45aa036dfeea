"""TransMIL (Shao et al., NeurIPS 2021): a two-layer transformer over the tiles with Nyström attention and
the PPEG positional encoding, classified from a class token.

x = [cls; e₁ … e_N; e₁ … e_k] (the bag padded to a square √M × √M grid by repeating its first tiles, as in
the paper), x ← x + NystromAttn(LN(x)); PPEG: the tile tokens, laid out row by row on that grid, get
depthwise 7×7 + 5×5 + 3×3 convolutions added; x ← x + NystromAttn(LN(x)); logits = W LN(x)_cls.

Nyström attention (Xiong et al., AAAI 2021): with m landmarks q̃, k̃ (means of m contiguous segments of the
queries/keys), softmax(QKᵀ)V ≈ softmax(Q k̃ᵀ) · pinv(softmax(q̃ k̃ᵀ)) · softmax(q̃ Kᵀ) V, the pseudo-inverse
by 6 Newton–Schulz-type iterations (Razavi et al. 2014), plus a depthwise convolution of V along the
sequence (kernel 33) as residual. Memory is O(N·m) and, computed here in row chunks, O(chunk·m) beyond the
(N, hidden) activations: a 100k-tile bag runs on a CPU. Up to ``exact_max`` tokens the exact softmax
attention is used instead: the approximation only exists to avoid the O(N²) matrix, and below about 4·m
tokens that matrix is cheaper than Nyström's own m × m pseudo-inverse (a demo bag of 230 tiles, padded to
257 tokens, cost 24× the exact attention's time through the m = 256 Nyström path; at 1,024 tokens 2.3×).
Tile ``scores`` are the last layer's class-token attention to each tile (head mean, the Nyström row),
``weights`` its positive part normalised.
The model is order-aware (PPEG): tiles come in the features file's row-major tile-grid order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from histcode.mil.dropout import MaskDropout
from histcode.mil.pool_base import Pooling, PoolOutput, check_bag, register_pooling

CHUNK = 8192  # query/key rows per block of the attention computations


def iterative_pinv(x: Tensor, iters: int = 6) -> Tensor:
    """Moore–Penrose pseudo-inverse of (…, m, m) matrices by Razavi et al.'s iteration
    Z ← ¼ Z (13I − XZ(15I − XZ(7I − XZ))), Z₀ = Xᵀ / (‖X‖₁ ‖X‖_∞)."""
    eye = torch.eye(x.shape[-1], dtype=x.dtype)
    z = x.transpose(-1, -2) / (x.abs().sum(-1).max() * x.abs().sum(-2).max())
    for _ in range(iters):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
    return z


def segment_means(x: Tensor, m: int) -> Tensor:
    """(h, n, d) → (h, m, d): means of m contiguous, nearly equal segments of the sequence."""
    n = x.shape[1]
    seg = torch.arange(n) * m // n
    out = x.new_zeros(x.shape[0], m, x.shape[2]).index_add_(1, seg, x)
    return out / torch.bincount(seg, minlength=m).to(x.dtype)[None, :, None]


class NystromAttention(nn.Module):
    """Multi-head Nyström self-attention over a (n, dim) sequence (see module docstring)."""

    def __init__(self, dim: int, *, heads: int = 8, landmarks: int = 256, pinv_iters: int = 6,
                 residual_kernel: int = 33, dropout: float = 0.0, exact_max: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden ({dim}) must be divisible by the {heads} attention heads")
        self.heads, self.d, self.m, self.pinv_iters = heads, dim // heads, landmarks, pinv_iters
        self.exact_max = landmarks if exact_max is None else max(int(exact_max), landmarks)
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), MaskDropout(dropout))
        self.res_conv = nn.Conv2d(heads, heads, (residual_kernel, 1), padding=(residual_kernel // 2, 0),
                                  groups=heads, bias=False)

    def forward(self, x: Tensor, *, cls_row: bool = False, cls_only: bool = False) -> tuple[Tensor, Tensor | None]:
        """(n, dim) → ((n, dim), the head-mean attention row of token 0 (n,) when ``cls_row``). With ``cls_only``
        only token 0's output, (1, dim): the last layer's other outputs are never read, and in the exact path
        this skips their queries, their n × n attention and their output projection (forward and backward)."""
        n = x.shape[0]
        rows = 1 if cls_only else n  # the tokens whose output is computed
        row = None
        if cls_only and n <= self.exact_max:  # exact attention of the class token alone
            w_qkv = self.to_qkv.weight
            q = F.linear(x[:1], w_qkv[: self.heads * self.d]).view(1, self.heads, self.d).transpose(0, 1)
            k, v = F.linear(x, w_qkv[self.heads * self.d :]).view(n, 2, self.heads, self.d).permute(1, 2, 0, 3)
            attn = torch.softmax((q * self.d**-0.5) @ k.transpose(-1, -2), dim=-1)  # (h, 1, n)
            out = attn @ v
            row = attn[:, 0].mean(0) if cls_row else None
        elif n <= self.exact_max:  # exact attention
            q, k, v = self._qkv(x)
            attn = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
            out = attn @ v
            row = attn[:, 0].mean(0) if cls_row else None
        else:
            q, k, v = self._qkv(x)
            q_l, k_l = segment_means(q, self.m), segment_means(k, self.m)
            kernel2 = iterative_pinv(torch.softmax(q_l @ k_l.transpose(-1, -2), dim=-1), self.pinv_iters)
            # softmax(q̃ Kᵀ) V over the keys in chunks: an online softmax per landmark
            mx = z = acc = None
            for s in range(0, n, CHUNK):
                logit = q_l @ k[:, s : s + CHUNK].transpose(-1, -2)  # (h, m, c)
                cm = logit.amax(-1)
                new = cm if mx is None else torch.maximum(mx, cm)
                p = torch.exp(logit - new[..., None])
                if mx is None:
                    z, acc = p.sum(-1), p @ v[:, s : s + CHUNK]
                else:
                    scale = torch.exp(mx - new)
                    z, acc = z * scale + p.sum(-1), acc * scale[..., None] + p @ v[:, s : s + CHUNK]
                mx = new
            w = kernel2 @ (acc / z[..., None])  # (h, m, d)
            out = torch.cat([torch.softmax(q[:, s : min(s + CHUNK, rows)] @ k_l.transpose(-1, -2), dim=-1) @ w
                             for s in range(0, rows, CHUNK)], dim=1)
            if cls_row:
                u = torch.softmax(q[:, :1] @ k_l.transpose(-1, -2), dim=-1) @ kernel2  # (h, 1, m)
                row = torch.cat([(u @ torch.exp(q_l @ k[:, s : s + CHUNK].transpose(-1, -2) - mx[..., None])
                                  / z[..., None]) for s in range(0, n, CHUNK)], dim=-1)[:, 0].mean(0)
        # V's residual convolution along the sequence at the output tokens (token 0 sees the first kernel // 2 + 1)
        reach = n if rows == n else self.res_conv.kernel_size[0] // 2 + rows
        out = out + self.res_conv(v[None, :, :reach])[0][:, :rows]
        return self.to_out(out.permute(1, 0, 2).reshape(rows, -1)), row

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Scaled queries, keys and values of every token, (heads, n, d) each."""
        q, k, v = self.to_qkv(x).view(x.shape[0], 3, self.heads, self.d).permute(1, 2, 0, 3)
        return q * self.d**-0.5, k, v


class PPEG(nn.Module):
    """Pyramid position encoding generator: x + DWConv7(x) + DWConv5(x) + DWConv3(x) on the token grid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in (7, 5, 3))

    def forward(self, x: Tensor, side: int) -> Tensor:
        cls, feat = x[:1], x[1:]
        grid = feat.T.reshape(1, -1, side, side)
        # the three depthwise convolutions summed = one 7×7 depthwise convolution with the kernels summed
        # (5×5 and 3×3 zero-padded to 7×7): same output, a third of the (slow on CPU) depthwise passes
        c7, c5, c3 = self.convs
        weight = c7.weight + F.pad(c5.weight, (1, 1, 1, 1)) + F.pad(c3.weight, (2, 2, 2, 2))
        bias = c7.bias + c5.bias + c3.bias
        grid = grid + F.conv2d(grid, weight, bias, padding=3, groups=grid.shape[1])
        return torch.cat([cls, grid.flatten(2)[0].T])


@register_pooling("transmil")
class TransMIL(Pooling):
    """TransMIL (see module docstring). ``heads`` divides ``hidden``; ``landmarks`` = m of Nyström;
    ``exact_max``: exact attention up to this many tokens (None = m, the behaviour of models saved before
    it existed)."""

    def __init__(self, in_dim: int, *, hidden: int = 512, dropout: float = 0.0, heads: int = 8,
                 landmarks: int = 256, exact_max: int | None = None) -> None:
        super().__init__(in_dim, hidden=hidden, dropout=dropout)
        self.heads, self.landmarks = heads, landmarks
        self.exact_max = landmarks if exact_max is None else max(int(exact_max), landmarks)
        self.cls_token = nn.Parameter(torch.randn(1, hidden) * 0.02)
        self.norm1, self.norm2, self.norm = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        nys = {"heads": heads, "landmarks": landmarks, "dropout": dropout, "exact_max": self.exact_max}
        self.attn1 = NystromAttention(hidden, **nys)
        self.attn2 = NystromAttention(hidden, **nys)
        self.ppeg = PPEG(hidden)

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "heads": self.heads, "landmarks": self.landmarks, "exact_max": self.exact_max}

    def encode(self, e: Tensor) -> PoolOutput:
        """(N, hidden) embedded tiles → class-token vector and class-token attention to each tile."""
        n = e.shape[0]
        side = math.ceil(math.sqrt(n))
        pad = side * side - n
        x = torch.cat([self.cls_token, e, e[:pad]]) if pad else torch.cat([self.cls_token, e])
        del e
        x = x + self.attn1(self.norm1(x))[0]
        x = self.ppeg(x, side)
        upd, row = self.attn2(self.norm2(x), cls_row=True, cls_only=True)  # only the class token is read
        assert row is not None
        s = row[1 : n + 1]
        w = F.relu(s.detach())
        total = w.sum()
        w = w / total if total > 0 else torch.full_like(w, 1.0 / n)
        return PoolOutput(pooled=self.norm(x[0] + upd[0]), scores=s, weights=w)

    def forward(self, h: Tensor) -> PoolOutput:
        return self.encode(self.embed(check_bag(h, self.in_dim)))

    @torch.no_grad()
    def forward_stream(self, chunks: Iterable[Tensor]) -> PoolOutput:
        """Attention needs every tile at once: the chunks are embedded one by one (hidden < input width) and
        the transformer runs on the (N, hidden) embeddings with chunked Nyström attention."""
        parts = [self.embed(check_bag(c, self.in_dim)) for c in chunks]
        if not parts:
            raise ValueError("empty bag: a slide needs at least one tile feature")
        e = torch.cat(parts)
        del parts
        return self.encode(e)
