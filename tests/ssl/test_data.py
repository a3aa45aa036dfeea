"""Per-slide epoch sampling and rank sharding."""

from __future__ import annotations

import numpy as np
import pytest

from histcode.config import ConfigError
from histcode.ssl.data import EpochBatchSampler, epoch_batches, per_slide_counts, sample_epoch

N_TILES = [40, 10, 3, 100]


def _slide_of(idx: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.cumsum(N_TILES), idx, side="right")


def test_fraction_per_slide_with_cap() -> None:
    assert per_slide_counts(N_TILES, 0.25, 16).tolist() == [10, 2, 1, 16]
    idx = sample_epoch(N_TILES, fraction=0.25, max_per_slide=16, seed=0, epoch=0)
    assert np.bincount(_slide_of(idx), minlength=4).tolist() == [10, 2, 1, 16]
    assert len(set(idx.tolist())) == len(idx)  # without replacement


def test_sampling_is_a_function_of_seed_and_epoch() -> None:
    a = sample_epoch(N_TILES, fraction=0.5, max_per_slide=50, seed=1, epoch=3)
    assert np.array_equal(a, sample_epoch(N_TILES, fraction=0.5, max_per_slide=50, seed=1, epoch=3))
    assert not np.array_equal(a, sample_epoch(N_TILES, fraction=0.5, max_per_slide=50, seed=1, epoch=4))


def test_batches_mix_slides_and_ranks_are_disjoint_and_equal() -> None:
    idx = sample_epoch(N_TILES, fraction=0.5, max_per_slide=50, seed=2, epoch=0)
    r0 = epoch_batches(idx, batch_size=8, rank=0, world_size=2)
    r1 = epoch_batches(idx, batch_size=8, rank=1, world_size=2)
    assert r0.shape == r1.shape == (len(idx) // 16, 8)
    assert not set(r0.ravel()) & set(r1.ravel())
    assert all(len(set(_slide_of(b))) > 1 for b in r0)


def test_too_few_tiles_for_one_batch_says_what_to_change() -> None:
    """A pilot cohort under the paper profile (batch 256) samples fewer tiles than one batch: a user error that
    names the key and a batch size that fits, printed as one line (ConfigError), not a traceback."""
    with pytest.raises(ConfigError, match=r"^pretrain samples 5 tiles per epoch.*"
                                          r"set pretrain\.batch_size to at most 2 or raise"):
        epoch_batches(np.arange(5), batch_size=4, rank=0, world_size=2)


def test_sampler_switches_epoch() -> None:
    s = EpochBatchSampler(N_TILES, fraction=0.5, max_per_slide=50, seed=0, batch_size=4)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first and len(s) == len(first)
