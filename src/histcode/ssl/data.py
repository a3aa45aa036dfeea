"""Pretraining tile sampling: a fraction of every slide's tiles per epoch, shuffled across slides.

The paper samples tiles per slide so large slides do not dominate; shuffling the union means no batch is
made of one slide. Sampling is a pure function of (seed, epoch), so a resumed run sees the same tiles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

log = logging.getLogger(__name__)


def per_slide_counts(n_tiles: Sequence[int], fraction: float, max_per_slide: int) -> np.ndarray:
    """Tiles drawn from each slide per epoch: round(fraction·n), at least 1, at most ``max_per_slide``."""
    n = np.asarray(n_tiles, dtype=np.int64)
    k = np.clip(np.rint(n * fraction).astype(np.int64), 1, max_per_slide)
    return np.minimum(k, n)


def sample_epoch(n_tiles: Sequence[int], *, fraction: float, max_per_slide: int, seed: int,
                 epoch: int) -> np.ndarray:
    """Flat tile indices (M,) into the concatenation of all slides' tiles, globally shuffled."""
    rng = np.random.default_rng([seed, epoch])
    n = np.asarray(n_tiles, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n)[:-1]])
    picks = [off + rng.choice(cnt, size=k, replace=False)
             for off, cnt, k in zip(offsets, n, per_slide_counts(n, fraction, max_per_slide), strict=True)
             if cnt > 0]
    if not picks:
        return np.zeros(0, dtype=np.int64)
    return rng.permutation(np.concatenate(picks))


def epoch_batches(indices: np.ndarray, *, batch_size: int, rank: int, world_size: int) -> np.ndarray:
    """(steps, batch_size) indices for this rank; the tail that does not fill a global batch is dropped so
    every rank runs the same number of equal-size steps (needed by DDP and shuffle-BN)."""
    per_step = batch_size * world_size
    steps = len(indices) // per_step
    if steps == 0:
        from histcode.config import ConfigError

        fit = len(indices) // world_size  # the largest batch_size these tiles fill (batch_size must be >= 2)
        lower = f"set pretrain.batch_size to at most {fit} or " if fit >= 2 else ""
        raise ConfigError(
            f"pretrain samples {len(indices)} tiles per epoch (tiles_per_slide of each slide's tiles, at most "
            f"max_tiles_per_slide), fewer than one global batch of {per_step} (batch_size {batch_size} × "
            f"{world_size} rank(s)); in params.yaml {lower}raise pretrain.tiles_per_slide / max_tiles_per_slide."
        )
    used = indices[: steps * per_step]
    return used[rank::world_size].reshape(steps, batch_size)


class EpochBatchSampler(Sampler[list[int]]):
    """Yields this rank's batches of the current epoch; ``set_epoch`` switches (works with persistent workers)."""

    def __init__(self, n_tiles: Sequence[int], *, fraction: float, max_per_slide: int, seed: int,
                 batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.n_tiles = list(n_tiles)
        self.fraction, self.max_per_slide, self.seed = fraction, max_per_slide, seed
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.epoch = 0
        self.skip = 0

    def batches(self, epoch: int) -> np.ndarray:
        idx = sample_epoch(self.n_tiles, fraction=self.fraction, max_per_slide=self.max_per_slide,
                           seed=self.seed, epoch=epoch)
        return epoch_batches(idx, batch_size=self.batch_size, rank=self.rank, world_size=self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.batches(self.epoch):
            yield b.tolist()

    def __len__(self) -> int:
        return len(self.batches(self.epoch))


class TensorTiles(Dataset[torch.Tensor]):
    """In-memory tiles (N, 3, H, W) uint8 grouped into slides by ``n_tiles`` (tests and benchmarks)."""

    def __init__(self, tiles: torch.Tensor, n_tiles: Sequence[int]) -> None:
        if tiles.dtype != torch.uint8 or tiles.ndim != 4 or tiles.shape[1] != 3:
            raise ValueError(f"TensorTiles: expected uint8 (N, 3, H, W), got {tiles.dtype} {tuple(tiles.shape)}")
        if sum(n_tiles) != tiles.shape[0]:
            raise ValueError(f"TensorTiles: n_tiles sums to {sum(n_tiles)}, but there are {tiles.shape[0]} tiles")
        self.tiles = tiles
        self.n_tiles = list(n_tiles)

    def __len__(self) -> int:
        return self.tiles.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.tiles[i]
