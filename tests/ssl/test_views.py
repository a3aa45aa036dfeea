"""Pretraining views made in the DataLoader workers: tagged with their step, the same bits as in the training
process."""

from __future__ import annotations

import pytest
import torch

from histcode.ssl.augment import AugmentConfig, HEAugment
from histcode.ssl.config import PretrainConfig
from histcode.ssl.data import EpochBatchSampler, TensorTiles
from histcode.ssl.trainer import fit
from histcode.ssl.views import (
    BANK_KEY,
    VIEWS_KEY,
    StepBatchSampler,
    StepItems,
    ViewsCollate,
    bank_step,
    make_views,
    step_generator,
)

SMALL = dict(backbone="resnet18_trunc", input_px=32, read_px=40, epochs=2, batch_size=8, tiles_per_slide=0.5,
             bank_size=16, proj_hidden=32, proj_dim=8, threads=1, progress=False, log_every=1)


def _tiles() -> TensorTiles:
    g = torch.Generator().manual_seed(0)
    return TensorTiles((torch.rand(48, 3, 40, 40, generator=g) * 255).to(torch.uint8), [16, 16, 16])


def test_batches_carry_their_global_step_or_their_bank_pass_place() -> None:
    batches = EpochBatchSampler([16, 16, 16], fraction=0.5, max_per_slide=64, seed=1, batch_size=8)
    tagged = StepBatchSampler(batches)
    per_epoch = len(batches)
    tagged.set_epoch(2)
    got = list(tagged)
    assert [b[0][1] for b in got] == [2 * per_epoch + k for k in range(per_epoch)]
    assert [[i for i, _ in b] for b in got] == list(batches)  # the same tiles in the same order
    tagged.bank_pass = True
    assert [{step for _, step in b} for b in tagged] == [{bank_step(k)} for k in range(per_epoch)]
    assert all(bank_step(k) < 0 for k in range(per_epoch))  # never a training step


def test_collate_makes_the_views_the_training_process_would() -> None:
    ds = _tiles()
    augment = HEAugment(AugmentConfig(out_px=32))
    collate = ViewsCollate(None, augment, seed=5, rank=0)
    items = [StepItems(ds)[(i, 7)] for i in range(8)]
    tiles, errors, views, step = collate(items)
    assert step == 7 and errors == [""] * 8 and torch.equal(tiles, ds.tiles[:8])
    assert views is not None
    expected = make_views(ds.tiles[:8].float().div_(255.0), augment, step_generator(5, VIEWS_KEY, 7, 0))
    assert torch.equal(views[0], expected[0]) and torch.equal(views[1], expected[1])
    assert not torch.equal(views[0], views[1])  # two draws, not one view twice
    # the AdCo bank's first pass: one view of its k-th batch, from its own generator
    (bank,) = collate([StepItems(ds)[(i, bank_step(3))] for i in range(8)])[2]
    assert torch.equal(bank, augment(ds.tiles[:8].float().div_(255.0), step_generator(5, BANK_KEY, 3, 0)))
    with pytest.raises(ValueError, match="mixes steps"):
        collate([items[0], StepItems(ds)[(1, 8)]])


def test_views_made_in_worker_processes_train_the_same_encoder() -> None:
    ds = _tiles()
    in_process = fit(PretrainConfig(**SMALL, workers=0), ds, ds.n_tiles, seed=3)
    in_workers = fit(PretrainConfig(**SMALL, workers=2), ds, ds.n_tiles, seed=3)
    assert [h["loss"] for h in in_workers.history] == [h["loss"] for h in in_process.history]
    a, b = in_process.method.state_dict(), in_workers.method.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
