"""Training-time bag augmentation for MIL that transfers to other sites: tile dropout and feature noise.

A site shift (stain, scanner, case mix) moves tile features and changes which tiles a slide offers; a model
that leans on a few tiles or on exact feature values breaks there. Dropping a random share of a bag's tiles
and jittering every feature (in units of its training SD) each step trains against both. Inference never
augments.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def noise_generator(seed: int) -> torch.Generator:
    """The feature noise's own torch stream for a fit seeded with ``seed`` (independent of the fit's numpy
    ``rng`` and of torch's global stream, which initialises the weights and draws dropout; draws nothing)."""
    state = np.random.SeedSequence([seed, 0x6E6F6973]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def augment_bag(
    bag: Tensor,
    rng: np.random.Generator,
    noise_gen: torch.Generator,
    *,
    tile_dropout: float,
    feature_noise: float,
    scale: Tensor | None,
) -> Tensor:
    """``bag`` (N, D) minus a ``tile_dropout`` share of its rows (at least one kept, drawn from ``rng``), plus
    N(0, (feature_noise · scale)²) noise per value drawn from ``noise_gen``; ``scale`` (D,) = the features'
    training SD (None: 1). Draws nothing when both are 0, so unaugmented training is bit-identical to before.
    The noise is torch's: a float32 draw is 4x cheaper than numpy's float64 one cast (0.11 vs 0.44 ms a bag)."""
    if tile_dropout > 0 and bag.shape[0] > 1:
        keep = rng.random(bag.shape[0]) >= tile_dropout
        if not keep.any():
            keep[rng.integers(bag.shape[0])] = True
        bag = bag[torch.from_numpy(np.flatnonzero(keep))]
    if feature_noise > 0:
        noise = torch.randn(tuple(bag.shape), generator=noise_gen) * feature_noise
        bag = bag.float() + (noise * scale if scale is not None else noise)
    return bag
