"""Training-time MIL augmentation: tile dropout and feature noise (shapes, rates, scale, determinism)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from histcode.mil.augment import augment_bag


def test_no_augmentation_draws_nothing_and_returns_the_bag() -> None:
    bag, rng = torch.randn(50, 4), np.random.default_rng(0)
    state = rng.bit_generator.state
    assert augment_bag(bag, rng, tile_dropout=0.0, feature_noise=0.0, scale=None) is bag
    assert rng.bit_generator.state == state


def test_tile_dropout_rate_and_rows_kept_unchanged() -> None:
    bag = torch.arange(20000, dtype=torch.float32)[:, None].repeat(1, 3)
    out = augment_bag(bag, np.random.default_rng(1), tile_dropout=0.3, feature_noise=0.0, scale=None)
    assert out.shape[0] == pytest.approx(14000, rel=0.03)
    assert set(out[:, 0].tolist()) <= set(bag[:, 0].tolist()) and torch.equal(out[:, 0], out[:, 2])
    one = augment_bag(torch.ones(1, 3), np.random.default_rng(1), tile_dropout=0.9, feature_noise=0.0, scale=None)
    assert one.shape == (1, 3)  # never an empty bag


def test_feature_noise_sd_follows_the_feature_scale_and_is_seeded() -> None:
    bag, scale = torch.zeros(20000, 2), torch.tensor([1.0, 10.0])
    a = augment_bag(bag, np.random.default_rng(2), tile_dropout=0.0, feature_noise=0.5, scale=scale)
    b = augment_bag(bag, np.random.default_rng(2), tile_dropout=0.0, feature_noise=0.5, scale=scale)
    torch.testing.assert_close(a, b)
    np.testing.assert_allclose(a.std(0).numpy(), [0.5, 5.0], rtol=0.03)
