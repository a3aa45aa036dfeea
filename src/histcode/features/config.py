"""The ``extract`` section of ``params.yaml`` (tile feature extraction)."""

from __future__ import annotations

import dataclasses
from typing import Literal

BASELINES = ("random", "simclr", "imagenet")  # comparison encoders: subsampled tiles, training cohorts only


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Which encoders embed every tile, and how fast.

    ``encoders`` names: ``adco`` (data/models/encoder or ``sources.adco``, e.g. ``models:/histcode-encoder@
    champion``), ``simclr`` (data/models/encoder_simclr), ``imagenet`` (``imagenet_backbone`` with the
    local ``imagenet_weights`` file; skipped with a warning when it is absent), ``random`` (seeded random
    init of the AdCo backbone), ``histomics`` (14 hand-crafted nuclear/stain features per tile: nuclei per mm² at
    two sizes, nuclear darkness and crowding, eosin without nuclei, fine texture; no weights;
    ``histcode.features.histomics``), a registered foundation model (``histcode.features.foundation``: ``uni``,
    ``virchow2``, ... with ``sources.<name>`` = its local weight file; a missing file is a one-line error), or
    any name given a directory/URI in ``sources``; a ``sources`` folder of TRIDENT/CLAM feature files is
    imported as that feature set without re-extracting.

    ``baseline_max_tiles`` > 0: the baselines (random, simclr, imagenet) embed a seeded subsample of at most that
    many tiles per slide (a valid feature set with fewer tiles per slide); 0 embeds every tile.
    ``baselines_external``: also embed the baselines on external cohorts. Off by default: the comparisons they
    exist for (Table 1's random-init row, the probes) are cross-validated on the training cohort, and external
    validation scores the registered encoder only; an explicit ``--encoder`` always runs.
    """

    encoders: list[str] = dataclasses.field(default_factory=lambda: ["adco"])
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    input_px: int = 128
    batch_size: int = 64
    workers: int = 2
    threads: int = 2
    dtype: Literal["float16", "float32"] = "float16"
    bf16: bool | Literal["auto"] = "auto"
    channels_last: bool = True
    stain: bool = True
    backbone: str | None = None
    imagenet_backbone: str = "resnet50_trunc"
    imagenet_weights: str | None = None
    max_bad_tile_frac: float = 0.1
    baseline_max_tiles: int = 0
    baselines_external: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        from histcode.config import ConfigError, check_rules
        from histcode.precision import check_setting

        check_setting(self.bf16, "extract.bf16")
        if not self.encoders:
            raise ConfigError("extract.encoders: list at least one encoder (e.g. [adco, random]).")
        rules = {
            "input_px": (self.input_px >= 32, ">= 32"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "workers": (self.workers >= 0, ">= 0"),
            "max_bad_tile_frac": (0 <= self.max_bad_tile_frac <= 1, "in [0, 1]"),
            "baseline_max_tiles": (self.baseline_max_tiles >= 0, ">= 0 (0 = every tile)"),
        }
        check_rules("extract", self, rules)
