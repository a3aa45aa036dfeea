"""The ``pretrain`` section of ``params.yaml`` (AdCo / SimCLR self-supervised pretraining)."""

from __future__ import annotations

import dataclasses
from typing import Literal

# keys of reports/metrics/pretrain.json: written by the trainer, read by `histcode summary` (one spelling)
METRIC_FINAL_LOSS = "final_loss"
METRIC_EPOCHS_DONE = "epochs_done"
METRIC_STEPS = "steps"
METRIC_TILES_PER_S = "tiles_per_s"


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """AdCo defaults follow HistCode (query τ 0.12, bank τ 0.02, bank lr 0.3, SGD lr 0.03 cosine).

    ``tiles_per_slide`` is the fraction of each slide's tiles drawn per epoch (capped by
    ``max_tiles_per_slide``); tiles of all slides are then shuffled together so no batch is one slide.
    """

    method: Literal["adco", "simclr"] = "adco"
    backbone: str = "resnet18_trunc"
    pretrained_weights: str | None = None
    input_px: int = 96
    read_px: int = 128
    epochs: int = 2
    batch_size: int = 64
    tiles_per_slide: float = 0.25
    max_tiles_per_slide: int = 64
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 0
    key_momentum: float = 0.99
    proj_hidden: int = 512
    proj_dim: int = 128
    bank_size: int = 1024
    bank_lr: float = 0.3
    bank_momentum: float = 0.9
    bank_weight_decay: float = 1e-4
    bank_tau: float = 0.02
    query_tau: float = 0.12
    symmetric: bool = False
    simclr_tau: float = 0.2
    workers: int = 2
    threads: int = 2
    bf16: bool | Literal["auto"] = "auto"  # autocast where the hardware has bf16 (histcode.precision)
    channels_last: bool = True
    stain: bool = True
    hed_sigma: float = 0.05  # H&E augmentation (histcode.ssl.augment): HED concentration jitter
    stain_vector_sigma: float = 0.05  # ... stain-vector jitter
    p_jpeg: float = 0.5  # ... JPEG re-compression probability
    jpeg_quality: tuple[int, int] = (40, 95)  # ... and quality range
    log_every: int = 10
    progress: bool = True
    max_bad_tile_frac: float = 0.1  # refuse (no encoder registered) when more tile reads than this fail

    def __post_init__(self) -> None:
        rules = {  # key: (holds, the rule in the words a user fixes params.yaml with)
            "max_bad_tile_frac": (0 <= self.max_bad_tile_frac <= 1, "in [0, 1]"),
            "input_px": (self.input_px >= 16, ">= 16"),
            "read_px": (self.read_px >= self.input_px // 2, f">= input_px / 2 ({self.input_px // 2})"),
            "epochs": (self.epochs >= 1, ">= 1"),
            "batch_size": (self.batch_size >= 2, ">= 2"),
            "tiles_per_slide": (0 < self.tiles_per_slide <= 1, "in (0, 1]"),
            "max_tiles_per_slide": (self.max_tiles_per_slide >= 1, ">= 1"),
            "key_momentum": (0 <= self.key_momentum < 1, "in [0, 1)"),
            "bank_size": (self.bank_size >= 1, ">= 1"),
            "bank_tau": (self.bank_tau > 0, "> 0"),
            "query_tau": (self.query_tau > 0, "> 0"),
            "simclr_tau": (self.simclr_tau > 0, "> 0"),
            "warmup_epochs": (0 <= self.warmup_epochs < self.epochs, f"in [0, epochs) = [0, {self.epochs})"),
            "hed_sigma": (0 <= self.hed_sigma < 1, "in [0, 1)"),
            "stain_vector_sigma": (self.stain_vector_sigma >= 0, ">= 0"),
            "p_jpeg": (0 <= self.p_jpeg <= 1, "in [0, 1]"),
            "jpeg_quality": (1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100,
                             "[low, high] with 1 <= low <= high <= 100"),
        }
        from histcode.config import check_rules

        check_rules("pretrain", self, rules)
        from histcode.precision import check_setting

        check_setting(self.bf16, "pretrain.bf16")
