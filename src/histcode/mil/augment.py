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


def augment_bag(
    bag: Tensor, rng: np.random.Generator, *, tile_dropout: float, feature_noise: float, scale: Tensor | None
) -> Tensor:
    """``bag`` (N, D) minus a ``tile_dropout`` share of its rows (at least one kept), plus N(0, (feature_noise ·
    scale)²) noise per value; ``scale`` (D,) = the features' training SD (None: 1). Draws nothing when both
    are 0, so unaugmented training is bit-identical to before."""
    if tile_dropout > 0 and bag.shape[0] > 1:
        keep = rng.random(bag.shape[0]) >= tile_dropout
        if not keep.any():
            keep[rng.integers(bag.shape[0])] = True
        bag = bag[torch.from_numpy(np.flatnonzero(keep))]
    if feature_noise > 0:
        noise = torch.from_numpy(rng.standard_normal(tuple(bag.shape)).astype(np.float32)) * feature_noise
        bag = bag.float() + (noise * scale if scale is not None else noise)
    return bag
