"""The ``mil`` section of ``params.yaml`` as a typed, frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from histcode.config import DEFAULT_POOLING, ConfigError


@dataclass(frozen=True)
class MilConfig:
    """Slide-level MIL training settings (tumour vs normal diagnosis).

    ``pooling`` is the model that is registered and whose attention feeds the DE stage; ``baselines`` are
    trained on the same folds for the comparison table and the ROC/PR figure. ``encoder`` selects the
    feature set (``null`` = the first of ``extract.encoders``). ``test_frac`` must be ``null`` or
    ``1/n_folds``: every patient is in exactly one test fold, so the test share is fixed by ``n_folds``.
    ``cv_groups``: ``patient`` (test folds of patients) or ``site`` (test folds of whole TCGA tissue source sites,
    site-preserved CV: no model is tested on a site it trained on; ingest reports how much the site alone
    predicts the label, ``site_only_auc``).
    ``encoder_methods`` are also cross-validated on every other feature set of ``extract.encoders`` (the
    encoder comparison); the per-method keys are ``inst_b``/``bag_weight``/``inst_loss`` (clam_sb),
    ``top_s`` (mil_rnn), ``heads``/``landmarks``/``exact_max`` (transmil: exact attention up to that many
    tokens, Nyström beyond).

    Transfer to another site (training only, never at inference): ``tile_dropout`` drops this fraction of a
    bag's tiles per step (after the ``max_train_tiles`` subsample) so no few tiles decide a slide;
    ``feature_noise`` adds Gaussian noise of this SD, in units of each feature's training SD, to every tile
    (stain/scanner shifts move features). ``threshold`` chooses the decision threshold on the pooled
    out-of-fold CV predictions (``youden``: max TPR − FPR, middle of the widest tied logit gap) or fixes it
    (``fixed`` = 0.5); ``ece_bins`` equal-width bins for the calibration error.
    """

    pooling: str = DEFAULT_POOLING
    baselines: list[str] = field(
        default_factory=lambda: ["clam_sb", "gated_attention", "abmil", "dsmil", "mil_rnn", "transmil", "mean", "max"]
    )
    encoder: str | None = None
    encoder_methods: list[str] = field(default_factory=lambda: ["clam_sb"])
    hidden: int = 512
    attn_hidden: int = 256
    dropout: float = 0.25
    inst_b: int = 8
    bag_weight: float = 0.7
    inst_loss: str = "svm"
    top_s: int = 10
    heads: int = 8
    landmarks: int = 256
    exact_max: int = 1024
    lr: float = 2e-4
    weight_decay: float = 1e-5
    max_epochs: int = 40
    min_epochs: int = 5
    patience: int = 8
    n_folds: int = 5
    val_frac: float = 0.1
    test_frac: float | None = None
    cv_groups: Literal["patient", "site"] = "patient"
    bootstrap: int = 1000
    max_train_tiles: int = 4096  # random subset of a bag per training step (memory bound)
    chunk_tiles: int = 8192  # rows per chunk for inference on big bags (streaming softmax)
    cache_mb: int = 2048  # in-memory bag cache budget; beyond it bags are re-read from h5
    threads: int = 2
    workers: int = 2  # processes training CV folds in parallel (0 = in the stage's process)
    baseline_max_epochs: int | None = None  # shorter schedule for the baselines (null = max_epochs)
    baseline_patience: int | None = None
    progress: bool = True
    tile_dropout: float = 0.0
    feature_noise: float = 0.0
    threshold: Literal["youden", "fixed"] = "youden"
    ece_bins: int = 10

    def __post_init__(self) -> None:
        if not 0.0 <= self.tile_dropout < 1.0:
            raise ConfigError(f"mil.tile_dropout: must be in [0, 1), got {self.tile_dropout}")
        if self.feature_noise < 0:
            raise ConfigError(f"mil.feature_noise: must be >= 0, got {self.feature_noise}")
        from histcode.mil.pooling import pooling_names  # the registry: methods added there are valid here

        valid = pooling_names()
        for key, names in (("pooling", [self.pooling]), ("baselines", list(self.baselines))):
            bad = [n for n in names if n not in valid]
            if bad:
                raise ConfigError(f"mil.{key}: {bad[0]!r} is not a registered pooling; valid: {valid}")

    def poolings(self) -> list[str]:
        """Primary pooling first, then the baselines (deduplicated, order kept)."""
        out = [self.pooling]
        out += [b for b in self.baselines if b not in out]
        return out
