"""CLAM-SB (Lu et al. 2021, Nat. Biomed. Eng. 5:555): gated attention + instance-level clustering.

HistCode's slide model. The bag branch is ``gated_attention`` (a = softmax(wᵀ(tanh(V e) ⊙ sigm(U e))),
z = Σ a_i e_i, logits = W z). The instance branch takes the B tiles of highest attention of a slide of
class y as pseudo-positives and its B lowest as pseudo-negatives of class y's instance classifier
(Linear(hidden, 2)); the other class's classifier is not trained on that slide (CLAM's non-subtyping case).
Loss = bag_weight · CE(bag) + (1 − bag_weight) · instance loss, bag_weight 0.7, B = 8, instance loss the
smooth top-1 SVM (Berrada et al. 2018, CLAM's ``--inst_loss svm``) or cross-entropy.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from histcode.mil.methods.basic import GatedAttentionPool
from histcode.mil.pool_base import PoolOutput, register_pooling

INST_LOSSES = ("svm", "ce")


def smooth_top1_svm(logits: Tensor, target: Tensor, *, alpha: float = 1.0, tau: float = 1.0) -> Tensor:
    """Mean smooth top-1 SVM loss: τ · log Σ_j exp((α·[j ≠ y] + s_j − s_y) / τ) (Berrada et al. 2018, eq. 10).

    It tends to the multi-class hinge max_j(α·[j ≠ y] + s_j) − s_y as τ → 0.
    """
    margin = torch.full_like(logits, alpha).scatter(1, target[:, None], 0.0)
    s_y = logits.gather(1, target[:, None])
    return (tau * torch.logsumexp((margin + logits - s_y) / tau, dim=1)).mean()


def pseudo_labels(scores: Tensor, b: int) -> tuple[Tensor, Tensor]:
    """Indices of the top-``b`` and bottom-``b`` tiles by attention score and their targets (1s then 0s).

    ``b`` shrinks to N // 2 on bags with fewer than 2B tiles, so the two sets never overlap.
    """
    k = min(b, scores.shape[0] // 2)
    top = torch.topk(scores, k).indices
    bottom = torch.topk(-scores, k).indices
    idx = torch.cat([top, bottom])
    targets = torch.cat([torch.ones(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)])
    return idx, targets


@register_pooling("clam_sb")
class ClamSB(GatedAttentionPool):
    """CLAM single-branch (see module docstring): gated attention bag branch + instance clustering loss."""

    def __init__(
        self,
        in_dim: int,
        *,
        hidden: int = 512,
        attn_hidden: int = 256,
        dropout: float = 0.0,
        n_classes: int = 2,
        inst_b: int = 8,
        bag_weight: float = 0.7,
        inst_loss: str = "svm",
    ) -> None:
        super().__init__(in_dim, hidden=hidden, attn_hidden=attn_hidden, dropout=dropout)
        if inst_b <= 0:
            raise ValueError(f"inst_b must be positive, got {inst_b}")
        if not 0.0 <= bag_weight <= 1.0:
            raise ValueError(f"bag_weight must be in [0, 1], got {bag_weight}")
        if inst_loss not in INST_LOSSES:
            raise ValueError(f"inst_loss must be one of {INST_LOSSES}, got {inst_loss!r} (params.yaml mil.inst_loss)")
        self.n_classes, self.inst_b, self.bag_weight, self.inst_loss = n_classes, inst_b, bag_weight, inst_loss
        self.instance_classifiers = nn.ModuleList(nn.Linear(hidden, 2) for _ in range(n_classes))

    def hparams(self) -> dict[str, Any]:
        return {
            **super().hparams(),
            "inst_b": self.inst_b,
            "bag_weight": self.bag_weight,
            "inst_loss": self.inst_loss,
        }

    def instance_loss(self, e: Tensor, scores: Tensor, label: int) -> Tensor:
        """Clustering loss of one bag: class ``label``'s instance classifier on its top/bottom-B tiles."""
        idx, targets = pseudo_labels(scores.detach(), self.inst_b)
        if idx.numel() == 0:
            return e.new_zeros(())
        logits = self.instance_classifiers[label](e[idx])
        if self.inst_loss == "svm":
            return smooth_top1_svm(logits, targets)
        return F.cross_entropy(logits, targets)

    def loss(self, out: PoolOutput, head: nn.Module, label: int) -> Tensor:
        bag = F.cross_entropy(self.bag_logits(out, head).unsqueeze(0), torch.tensor([label]))
        inst = self.instance_loss(out.extra["embedded"], out.scores, label)
        return self.bag_weight * bag + (1.0 - self.bag_weight) * inst
