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
VIEWS_KEY = 1  # the views' generator key: step_generator(seed, VIEWS_KEY, step, rank)
BANK_KEY = 7  # the AdCo bank's first pass: one view of its k-th batch from step_generator(seed, BANK_KEY, k, rank)


def step_generator(*key: int) -> torch.Generator:
    """A torch generator seeded from ``key`` (e.g. seed, purpose, step, rank): independent streams per step."""
    seed = int(np.random.SeedSequence([abs(k) for k in key]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def bank_step(k: int) -> int:
    """The step tag of the bank pass's ``k``-th batch: negative, never a training step."""
    return -1 - k


def make_views(x: torch.Tensor, augment: HEAugment, g: torch.Generator) -> Views:
    """Two views of float [0, 1] tiles ``x`` from one generator, drawn in this order (query view, key view)."""
    return augment(x, g), augment(x, g)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """``EpochBatchSampler``'s batches with each index tagged by the batch's global step (epoch · steps per
    epoch + batch), or, while ``bank_pass`` is set, by ``bank_step`` of the batch's place in the epoch (the AdCo
    bank's first pass, one view per tile). Runs in the training process, so the flag reaches persistent workers
    through the indices."""

    def __init__(self, batches: EpochBatchSampler) -> None:
        self.batches = batches
        self.bank_pass = False

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches, bank_pass = self.batches.batches(self.batches.epoch), self.bank_pass
        first = self.batches.epoch * len(batches)
        for k, batch in enumerate(batches):
            step = bank_step(k) if bank_pass else first + k
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
    """Collate of ``StepItems``: (uint8 tiles (B, 3, H, W), read errors, views, step).

    Tiles are stain-normalised first (``TileCollate``), then augmented exactly as the training process would:
    ``make_views(tiles / 255, augment, step_generator(seed, VIEWS_KEY, step, rank))``, or for the bank pass's
    ``k``-th batch (``bank_step(k)``) the one view ``augment(tiles / 255, step_generator(seed, BANK_KEY, k,
    rank))``."""

    def __init__(self, normalize: Callable[[torch.Tensor], torch.Tensor] | None, augment: HEAugment, *,
                 seed: int, rank: int) -> None:
        self.tiles = TileCollate(normalize)
        self.augment, self.seed, self.rank = augment, seed, rank

    def __call__(self, items: list[tuple[Any, int]]) -> tuple[torch.Tensor, list[str], tuple[torch.Tensor, ...], int]:
        steps = {step for _, step in items}
        if len(steps) != 1:
            raise ValueError(f"ViewsCollate: a batch mixes steps {sorted(steps)}")
        tiles, errors = self.tiles([item for item, _ in items])
        step = steps.pop()
        x = tiles.float().div_(255.0)
        if step < 0:
            return tiles, errors, (self.augment(x, step_generator(self.seed, BANK_KEY, -1 - step, self.rank)),), step
        return tiles, errors, make_views(x, self.augment, step_generator(self.seed, VIEWS_KEY, step, self.rank)), step
