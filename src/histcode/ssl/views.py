"""The two augmented views of a pretraining step, made in the DataLoader workers when training runs on a CPU.

On a CPU the training process was the bottleneck: it made a batch's two augmented views, then ran the
network, one after the other (in the demo's profile the augmentation cost as much CPU as forward and backward
together), while the loader workers, which only read and stain-normalise, waited. So on a CPU the workers make
the views, in the collate. Each batch carries its global step, and the views' generator is the same function of
(seed, step, rank) wherever it runs, so the views, and the encoder trained on them, are the same bits as when the
training process made them (a test compares both placements).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from histcode.slides.tile_dataset import TileCollate
from histcode.ssl.augment import HEAugment
from histcode.ssl.data import EpochBatchSampler

Views = tuple[torch.Tensor, torch.Tensor]
NO_STEP = -1  # a batch without views (the AdCo bank's first pass makes its own)
VIEWS_KEY = 1  # the views' generator key: step_generator(seed, VIEWS_KEY, step, rank)


def step_generator(*key: int) -> torch.Generator:
    """A torch generator seeded from ``key`` (e.g. seed, purpose, step, rank): independent streams per step."""
    seed = int(np.random.SeedSequence([abs(k) for k in key]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def make_views(x: torch.Tensor, augment: HEAugment, g: torch.Generator) -> Views:
    """Two views of float [0, 1] tiles ``x`` from one generator, drawn in this order (query view, key view)."""
    return augment(x, g), augment(x, g)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """``EpochBatchSampler``'s batches with each index tagged by the batch's global step (epoch · steps per
    epoch + batch), or by ``NO_STEP`` while ``with_views`` is false. Runs in the training process, so the flag
    reaches persistent workers through the indices."""

    def __init__(self, batches: EpochBatchSampler) -> None:
        self.batches = batches
        self.with_views = True

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches, with_views = self.batches.batches(self.batches.epoch), self.with_views
        first = self.batches.epoch * len(batches)
        for k, batch in enumerate(batches):
            step = first + k if with_views else NO_STEP
            yield [(i, step) for i in batch.tolist()]

    def __len__(self) -> int:
        return len(self.batches)


class StepItems(Dataset[tuple[Any, int]]):
    """``dataset`` indexed by (index, step) pairs: item → (dataset[index], step)."""

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        i, step = key
        return self.dataset[i], step


class ViewsCollate:
    """Collate of ``StepItems``: (uint8 tiles (B, 3, H, W), read errors, (view 1, view 2) or None, step).

    Tiles are stain-normalised first (``TileCollate``), then augmented exactly as the training process would:
    ``make_views(tiles / 255, augment, step_generator(seed, VIEWS_KEY, step, rank))``."""

    def __init__(self, normalize: Callable[[torch.Tensor], torch.Tensor] | None, augment: HEAugment, *,
                 seed: int, rank: int) -> None:
        self.tiles = TileCollate(normalize)
        self.augment, self.seed, self.rank = augment, seed, rank

    def __call__(self, items: list[tuple[Any, int]]) -> tuple[torch.Tensor, list[str], Views | None, int]:
        steps = {step for _, step in items}
        if len(steps) != 1:
            raise ValueError(f"ViewsCollate: a batch mixes steps {sorted(steps)}")
        tiles, errors = self.tiles([item for item, _ in items])
        step = steps.pop()
        if step == NO_STEP:
            return tiles, errors, None, step
        g = step_generator(self.seed, VIEWS_KEY, step, self.rank)
        return tiles, errors, make_views(tiles.float().div_(255.0), self.augment, g), step
