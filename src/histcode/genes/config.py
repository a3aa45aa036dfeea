"""The ``de`` section of params.yaml (stage ``train_de``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from histcode.config import ProjectConfig, section


@dataclass(frozen=True)
class DEConfig:
    """Per-gene DE models: inputs from top/bottom-l attention tiles, linear heads, per-gene attention MIL.

    ``encoder`` names the features folder (data/features/<cohort>/<encoder>/) and ``attention_model`` the
    attention folder of the tumour-diagnosis MIL model (data/attention/<cohort>/<attention_model>/; null =
    ``mil.pooling``, resolved by ``histcode.config.ProjectConfig``: read the section with ``de_config``).
    ``mil_readout`` is how the per-gene MIL turns attention into a prediction (``abundance``: the heatmaps
    are identifiable, see ``histcode.genes.gene_mil``); ``mil_pca_dim`` > 0 projects tiles onto that many
    leading principal components of the training tiles, relative variance kept (0: raw features).

    ``method`` (``<representation>/<model>``, ``histcode.genes.methods``) is the registered DE model; every
    entry of ``methods`` plus ``method`` and the paper's ``paper/heads`` is cross-validated on the same folds
    and reported beside. Linear models choose their penalty by ``inner_folds``-fold CV inside each training
    fold. Summaries: ``summary_pca_dim`` components of the training tiles, their ``summary_quantiles``, the
    proportions of ``n_prototypes`` k-means prototypes, from at most ``summary_max_tiles`` tiles per slide
    (``summary_center_slides``: of tiles minus their slide's mean, see ``histcode.genes.summaries``).
    ``null_shuffles``: cross-validations of ``method`` on targets shuffled across patients, the null of the
    per-gene test ``cv_null`` (``histcode.genes.null``; 0 = none).
    """

    top_l: int = 100
    bottom_l: int = 100
    lr: float = 0.001
    weight_decay: float = 0.001
    epochs: int = 200
    n_folds: int = 5
    heatmap_genes: list[str] = field(default_factory=lambda: ["CD3D", "CD247", "CD19", "PTEN"])
    mil_epochs: int = 30
    encoder: str = "adco"
    attention_model: str | None = None
    mil_lr: float = 0.0005
    mil_weight_decay: float = 0.0001
    mil_hidden: int = 128
    mil_attn_hidden: int = 64
    mil_max_tiles: int = 512
    mil_readout: Literal["abundance", "embedding"] = "abundance"
    mil_pca_dim: int = 0
    threads: int = 1
    mil_workers: int = 2  # processes fitting the per-gene MIL models (0 = in the stage's process)
    progress: bool = True
    method: str = "summaries/rrr"
    methods: list[str] = field(default_factory=lambda: ["paper/heads", "paper/ridge", "summaries/ridge",
                                                        "summaries/pls", "summaries/rrr"])
    inner_folds: int = 4
    summary_pca_dim: int = 16
    summary_quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])
    n_prototypes: int = 16
    summary_max_tiles: int = 2000
    summary_center_slides: bool = False
    null_shuffles: int = 20

    @property
    def all_methods(self) -> list[str]:
        """The registered method first, then the paper's, then the rest of ``methods`` (no repeats)."""
        return list(dict.fromkeys([self.method, "paper/heads", *self.methods]))

    def __post_init__(self) -> None:
        from histcode.config import ConfigError

        for name in ("top_l", "bottom_l", "epochs", "n_folds", "mil_epochs", "mil_hidden", "mil_attn_hidden",
                     "mil_max_tiles", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"de.{name}: must be >= 1, got {getattr(self, name)}")
        if self.null_shuffles < 0:
            raise ConfigError(f"de.null_shuffles: must be >= 0 (0 = no CV null), got {self.null_shuffles}")
        if self.mil_workers < 0:
            raise ConfigError(f"de.mil_workers: must be >= 0, got {self.mil_workers}")
        from histcode.genes.methods import parse_method

        for m in [self.method, *self.methods]:
            try:
                parse_method(m)
            except ValueError as exc:
                raise ConfigError(f"de.method(s): {exc}") from None
        if self.inner_folds < 2:
            raise ConfigError(f"de.inner_folds: nested CV needs >= 2 folds, got {self.inner_folds}")
        if self.summary_pca_dim < 1 or self.n_prototypes < 0 or self.summary_max_tiles < 2:
            raise ConfigError("de.summary_pca_dim >= 1, de.n_prototypes >= 0 and de.summary_max_tiles >= 2 required")
        if any(not 0.0 <= q <= 1.0 for q in self.summary_quantiles):
            raise ConfigError(f"de.summary_quantiles: must lie in [0, 1], got {self.summary_quantiles}")
        if self.mil_readout not in ("abundance", "embedding"):
            raise ConfigError(f"de.mil_readout: must be 'abundance' or 'embedding', got {self.mil_readout!r}")
        if self.mil_pca_dim < 0:
            raise ConfigError(f"de.mil_pca_dim: must be >= 0 (0 = no projection), got {self.mil_pca_dim}")
        if self.n_folds < 2:
            raise ConfigError(f"de.n_folds: cross-validation needs >= 2 folds, got {self.n_folds}")
        for name in ("lr", "mil_lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"de.{name}: learning rate must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "mil_weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"de.{name}: must be >= 0, got {getattr(self, name)}")


def de_config(params: dict[str, Any] | str | Path = "params.yaml") -> DEConfig:
    """The ``de`` section with ``attention_model`` resolved (null = ``mil.pooling``)."""
    return replace(section(DEConfig, "de", params), attention_model=ProjectConfig.load(params).de_attention_model)
