"""Per-gene linear heads on the (2D,) top/bottom-tile inputs (issue 6 §4), and the registered form of the
regularised linear DE models (``LinearDEModel``, issue 14).

Both heads are one ``nn.Linear``: G outputs for regression (each gene its own weights, so the MSE separates
per gene) and 2G logits for classification (a two-class softmax per gene). ``DEModel`` wraps them with the
training fold's input standardisation and target scaling, so the registered model maps raw inputs to
predictions in log10(fc+1) units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from histcode.registry.safe_model import StoredModel


def _zero_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """A zero-initialised linear layer: training starts from "predict the training mean" (no random
    component in early predictions; with few patients and 2D ≫ P inputs that is what early-stopped
    ridge-like fitting wants)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class PerGeneRegression(nn.Module):
    """x (B, F) → (B, G) standardised log10(fc+1) predictions, one linear output per gene."""

    def __init__(self, in_dim: int, n_genes: int) -> None:
        super().__init__()
        if in_dim < 1 or n_genes < 1:
            raise ValueError(f"in_dim and n_genes must be >= 1, got {in_dim}, {n_genes}")
        self.linear = _zero_linear(in_dim, n_genes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class PerGeneClassifier(nn.Module):
    """x (B, F) → (B, G, 2) logits of a two-class softmax per gene (class 1 = differentially expressed)."""

    def __init__(self, in_dim: int, n_genes: int) -> None:
        super().__init__()
        if in_dim < 1 or n_genes < 1:
            raise ValueError(f"in_dim and n_genes must be >= 1, got {in_dim}, {n_genes}")
        self.n_genes = n_genes
        self.linear = _zero_linear(in_dim, 2 * n_genes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(x.shape[0], self.n_genes, 2)


class DEModel(nn.Module):
    """Standardisation + both heads. forward: raw x (B, 2D) → (B, G, 2) with [..., 0] the predicted
    log10(fc+1) and [..., 1] P(|log2 fc| > threshold). ``genes`` names the G outputs in order."""

    def __init__(self, in_dim: int, genes: Sequence[str]) -> None:
        super().__init__()
        self.genes = [str(g) for g in genes]
        g = len(self.genes)
        self.regression = PerGeneRegression(in_dim, g)
        self.classifier = PerGeneClassifier(in_dim, g)
        self.register_buffer("x_mean", torch.zeros(in_dim))
        self.register_buffer("x_scale", torch.ones(in_dim))
        self.register_buffer("y_mean", torch.zeros(g))
        self.register_buffer("y_scale", torch.ones(g))

    @property
    def in_dim(self) -> int:
        return int(self.x_mean.shape[0])

    def registry_spec(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(kind, arch, meta) the registry stores beside the weights (``de_from_stored`` rebuilds from them)."""
        return "de", {"in_dim": self.in_dim, "genes": list(self.genes)}, {}

    def standardise(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"DEModel expects inputs (B, {self.in_dim}), got {tuple(x.shape)}")
        return (x.float() - self.x_mean) / self.x_scale

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(pred log10(fc+1) (B, G), P(DE) (B, G)) from raw inputs (B, F)."""
        z = self.standardise(x)
        reg = self.regression(z) * self.y_scale + self.y_mean
        prob = torch.softmax(self.classifier(z), dim=-1)[..., 1]
        return reg, prob

    def forward(self, x: Tensor) -> Tensor:
        reg, prob = self.predict(x)
        return torch.stack([reg, prob], dim=-1)


class LinearDEModel(nn.Module):
    """A fitted regularised linear DE model (``histcode.genes.linear.LinearFit``) with the ``DEModel`` contract:
    raw design rows x (B, F) → (B, G, 2), [..., 0] log10(fc+1) and [..., 1] P(|log2 fc| > threshold) under a
    Normal(prediction, sigma²) per gene (``histcode.genes.linear.de_probability``)."""

    def __init__(self, coef: Tensor, intercept: Tensor, x_mean: Tensor, x_scale: Tensor, y_mean: Tensor,
                 y_scale: Tensor, genes: Sequence[str], log2_threshold: float) -> None:
        super().__init__()
        self.genes = [str(g) for g in genes]
        if coef.shape != (x_mean.shape[0], len(self.genes)):
            raise ValueError(f"coef {tuple(coef.shape)} does not match {x_mean.shape[0]} inputs × "
                             f"{len(self.genes)} genes")
        for name, t in (("coef", coef), ("intercept", intercept), ("x_mean", x_mean), ("x_scale", x_scale),
                        ("y_mean", y_mean), ("y_scale", y_scale)):
            self.register_buffer(name, torch.as_tensor(t, dtype=torch.float32))
        self.log2_threshold = float(log2_threshold)

    @property
    def in_dim(self) -> int:
        return int(self.x_mean.shape[0])

    def registry_spec(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(kind, arch, meta) the registry stores beside the buffers (``de_from_stored`` rebuilds from them)."""
        arch = {"in_dim": self.in_dim, "genes": list(self.genes), "log2_threshold": self.log2_threshold}
        return "de_linear", arch, {}

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"LinearDEModel expects inputs (B, {self.in_dim}), got {tuple(x.shape)}")
        z = (x.float() - self.x_mean) / self.x_scale
        reg = (z @ self.coef + self.intercept) * self.y_scale + self.y_mean
        hi = torch.log10(torch.tensor(2.0 ** self.log2_threshold + 1.0))
        lo = torch.log10(torch.tensor(2.0 ** -self.log2_threshold + 1.0))
        normal = torch.distributions.Normal(reg, self.y_scale.clamp(min=1e-6).expand_as(reg))
        prob = 1.0 - normal.cdf(hi.expand_as(reg)) + normal.cdf(lo.expand_as(reg))
        return reg, prob

    def forward(self, x: Tensor) -> Tensor:
        reg, prob = self.predict(x)
        return torch.stack([reg, prob], dim=-1)


def de_from_stored(stored: StoredModel) -> DEModel | LinearDEModel:
    """The DE model (``de``: trained heads; ``de_linear``: a fitted linear model) of a registered version
    (``histcode.registry.load_model``), in eval mode."""
    arch = stored.arch
    genes = [str(g) for g in arch["genes"]]
    if stored.kind == "de_linear":
        f, g = int(arch["in_dim"]), len(genes)
        z = torch.zeros  # shapes only: load_state_dict fills the fitted buffers
        model: nn.Module = LinearDEModel(z(f, g), z(g), z(f), torch.ones(f), z(g), torch.ones(g), genes,
                                         float(arch["log2_threshold"]))
    else:
        model = DEModel(int(arch["in_dim"]), genes)
    return stored.load_into(model, ("de", "de_linear"))  # type: ignore[return-value]
