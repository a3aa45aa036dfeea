"""AdCo (Hu et al., CVPR 2021): contrastive loss against an adversarially learned negative bank.

Notation (shapes): queries q (N, d) and keys k (N, d) are unit vectors; the bank W (K, d) is kept
unnormalised and its rows are normalised in the loss, m̂_j = W_j / ‖W_j‖. With temperature τ,

    L(τ) = −1/N Σ_n log[ exp(q_n·k_n/τ) / (exp(q_n·k_n/τ) + Σ_j exp(q_n·m̂_j/τ)) ]

The encoder MINIMISES L(τ_q); the bank MAXIMISES L(τ_b) by gradient ascent with its own SGD. The bank's
gradient has a closed form (no second backward pass through the network):

    ∂L/∂W_j = 1/(τ_b ‖W_j‖) · [ 1/N Σ_n p_nj q_n − (1/N Σ_n p_nj q_n·m̂_j) m̂_j ]

with p_nj = softmax_j([q_n·k_n, q_n·m̂_1, …, q_n·m̂_K] / τ_b) over the K negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_unit_pair(q: torch.Tensor, k: torch.Tensor) -> None:
    if q.ndim != 2 or q.shape != k.shape:
        raise ValueError(f"expected q and k of equal shape (N, d), got {tuple(q.shape)} and {tuple(k.shape)}")


class AdCoLoss(nn.Module):
    """InfoNCE with one positive key per query and shared negatives.

    forward(q (N, d), k (N, d), negatives (K, d)) → scalar mean loss; all inputs unit-norm, float32.
    """

    def __init__(self, tau: float) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"AdCoLoss: temperature must be > 0, got {tau}")
        self.tau = tau

    @staticmethod
    def similarities(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """(N, 1 + K) cosine similarities: column 0 the positive, then the negatives."""
        _check_unit_pair(q, k)
        if negatives.ndim != 2 or negatives.shape[1] != q.shape[1]:
            raise ValueError(f"negatives must be (K, {q.shape[1]}), got {tuple(negatives.shape)}")
        l_pos = (q * k).sum(dim=1, keepdim=True)
        l_neg = q @ negatives.T
        return torch.cat([l_pos, l_neg], dim=1)

    def forward(self, q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        return self.from_similarities(self.similarities(q, k, negatives))

    def from_similarities(self, sims: torch.Tensor) -> torch.Tensor:
        """The loss from precomputed (N, 1 + K) similarities (positive in column 0)."""
        target = torch.zeros(sims.shape[0], dtype=torch.long, device=sims.device)
        return F.cross_entropy(sims / self.tau, target)


class AdversarialBank(nn.Module):
    """K learnable negatives W (K, d), trained by gradient ASCENT on L(τ_b).

    ``weight`` is an ``nn.Parameter`` so a plain ``torch.optim.SGD(..., maximize=True)`` with momentum and
    weight decay reproduces AdCo's update v ← μv − ∂L/∂W + λW, W ← W − ηv. The encoder loss must use
    ``negatives().detach()``; the bank gradient is set with ``grad()`` (closed form, see module doc).
    """

    def __init__(self, size: int, dim: int, *, tau: float) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"AdversarialBank: size and dim must be >= 1, got {size}, {dim}")
        if tau <= 0:
            raise ValueError(f"AdversarialBank: temperature must be > 0, got {tau}")
        self.tau = tau
        self.weight = nn.Parameter(F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("initialised", torch.tensor(False))

    @property
    def size(self) -> int:
        return self.weight.shape[0]

    def negatives(self) -> torch.Tensor:
        """(K, d) unit-norm rows m̂_j."""
        return F.normalize(self.weight, dim=1)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """(N, d) queries → (N, K) similarities to the normalised bank."""
        return q @ self.negatives().T

    @torch.no_grad()
    def init_from_keys(self, keys: torch.Tensor) -> None:
        """Fill W with key embeddings (M, d) from a first pass (cycled when M < K), as AdCo does."""
        if keys.ndim != 2 or keys.shape[1] != self.weight.shape[1] or keys.shape[0] == 0:
            raise ValueError(f"init_from_keys: expected (M>0, {self.weight.shape[1]}) keys, got {tuple(keys.shape)}")
        idx = torch.arange(self.size, device=keys.device) % keys.shape[0]
        self.weight.copy_(keys[idx].to(self.weight))
        self.initialised.fill_(True)

    @torch.no_grad()
    def grad(self, q: torch.Tensor, k: torch.Tensor, sims: torch.Tensor | None = None) -> torch.Tensor:
        """Closed-form ∂L(τ_b)/∂W (K, d) for unit queries q and keys k (N, d), computed in float32.

        ``sims`` (N, 1 + K) = ``AdCoLoss.similarities(q, k, negatives())`` when the caller already has them
        (the encoder loss computed them), which saves the N×K×d product.
        """
        _check_unit_pair(q, k)
        q, k = q.float(), k.float()
        w = self.weight.detach().float()
        norms = w.norm(dim=1).clamp_min(1e-12)  # (K,)
        if sims is None:
            sims = AdCoLoss.similarities(q, k, w / norms.unsqueeze(1))  # (N, 1 + K)
        elif sims.shape != (q.shape[0], self.size + 1):
            raise ValueError(f"sims must be (N, 1 + K) = ({q.shape[0]}, {self.size + 1}), got {tuple(sims.shape)}")
        sims = sims.float()
        n = q.shape[0]
        p = torch.softmax(sims / self.tau, dim=1)[:, 1:]  # (N, K)
        # g_j = (Σ_n p_nj q_n) / (N τ ‖W_j‖) − (Σ_n p_nj l_nj) / (N τ ‖W_j‖²) · W_j   (m̂_j = W_j / ‖W_j‖)
        s_q = 1.0 / (n * self.tau * norms)
        s_w = (p * sims[:, 1:]).sum(dim=0) * s_q / norms
        g = p.T @ q  # (K, d)
        g.mul_(s_q.unsqueeze(1)).addcmul_(w, s_w.unsqueeze(1), value=-1.0)
        return g

    def loss(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """L(τ_b) as a differentiable function of W (for checks against autograd)."""
        logits = AdCoLoss.similarities(q, k, self.negatives()) / self.tau
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))
