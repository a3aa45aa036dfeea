"""The ``evaluate_de`` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from histcode.config import ConfigError


@dataclass(frozen=True)
class EvaluateDEConfig:
    """Statistics of held-out DE predictions against a random baseline, plots, enrichment.

    ``alternative`` is the Wilcoxon rank-sum alternative for predicted vs random correlations ("greater"
    asks whether predictions beat random). ``gene_sets`` is an optional GMT file; ``top_genes`` the number of
    best-predicted genes tested for enrichment; ``fc_bins`` the quantile bins of fold-change level.
    ``gene_test`` is the per-gene test that marks a gene significantly better than random after BH at ``fdr``
    (``histcode.metrics.de_stats``): ``pooled`` (its held-out Pearson r over all patients against
    ``n_permutations`` shuffles of the predictions across patients), ``cv_null`` (against the registered
    method's cross-validation re-run on shuffled targets, train_de's ``de.null_shuffles``) or ``folds``
    (Wilcoxon of its per-fold correlations); all that can be computed are reported.
    Synthetic cohorts only: per-gene heatmaps are scored against the generator's lymphocyte map, a tile
    being lymphocyte-rich at ``truth_min_density`` lymphocytes/mm², with the attention of the tumour model
    ``truth_reference`` (null: none) scored the same way as the reference. ``workers``: processes that render
    the per-gene heatmaps while this one computes the statistics (0 = here, after them).
    """

    n_random: int = 100
    fdr: float = 0.05
    gene_sets: Path | None = None
    top_genes: int = 20
    alternative: Literal["two-sided", "greater", "less"] = "greater"
    gene_test: Literal["pooled", "cv_null", "folds"] = "pooled"
    n_permutations: int = 10_000
    scatter_genes: list[str] = field(
        default_factory=lambda: ["PIK3CA", "MYC", "PTEN", "GATA3", "CD3D", "CD3E", "CD3G", "CD247", "CD19"])
    fc_bins: int = 4
    hist_bins: int = 20
    heatmap_slides: int = 2
    min_set_size: int = 2
    truth_top_k: int = 10
    truth_min_density: float = 2000.0
    truth_reference: str | None = "gated_attention"
    workers: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.gene_test not in ("pooled", "cv_null", "folds"):
            raise ConfigError(f"evaluate_de.gene_test: 'pooled', 'cv_null' or 'folds', got {self.gene_test!r}")
        if self.n_permutations < 100:
            raise ConfigError(f"evaluate_de.n_permutations: need >= 100, got {self.n_permutations}")
        if self.n_random < 2:
            raise ConfigError(f"evaluate_de.n_random: need >= 2 random draws, got {self.n_random}")
        if not 0.0 < self.fdr < 1.0:
            raise ConfigError(f"evaluate_de.fdr: must be in (0, 1), got {self.fdr}")
        for name in ("top_genes", "fc_bins", "hist_bins", "min_set_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluate_de.{name}: must be >= 1, got {getattr(self, name)}")
        if self.truth_min_density <= 0:
            raise ConfigError(
                f"evaluate_de.truth_min_density: must be > 0 lymphocytes/mm², got {self.truth_min_density}")
        if self.truth_top_k < 1:
            raise ConfigError(f"evaluate_de.truth_top_k: must be >= 1, got {self.truth_top_k}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"evaluate_de.workers: must be a whole number >= 0 (0 = in this process), got "
                              f"{self.workers!r}")
        if self.heatmap_slides < 0:
            raise ConfigError(f"evaluate_de.heatmap_slides: must be >= 0, got {self.heatmap_slides}")
