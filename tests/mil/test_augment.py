"""Training-time MIL augmentation: tile dropout and feature noise (shapes, rates, scale, determinism)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from histcode.mil.augment import augment_bag, noise_generator


def test_no_augmentation_draws_nothing_and_returns_the_bag() -> None:
    bag, rng, gen = torch.randn(50, 4), np.random.default_rng(0), noise_generator(0)
    state, gen_state = rng.bit_generator.state, gen.get_state()
    assert augment_bag(bag, rng, gen, tile_dropout=0.0, feature_noise=0.0, scale=None) is bag
    assert rng.bit_generator.state == state and torch.equal(gen.get_state(), gen_state)


def test_tile_dropout_rate_and_rows_kept_unchanged() -> None:
    bag = torch.arange(20000, dtype=torch.float32)[:, None].repeat(1, 3)
    out = augment_bag(bag, np.random.default_rng(1), noise_generator(1), tile_dropout=0.3, feature_noise=0.0,
                      scale=None)
    assert out.shape[0] == pytest.approx(14000, rel=0.03)
    assert set(out[:, 0].tolist()) <= set(bag[:, 0].tolist()) and torch.equal(out[:, 0], out[:, 2])
    one = augment_bag(torch.ones(1, 3), np.random.default_rng(1), noise_generator(1), tile_dropout=0.9,
                      feature_noise=0.0, scale=None)
    assert one.shape == (1, 3)  # never an empty bag


def test_feature_noise_sd_follows_the_feature_scale_and_is_seeded() -> None:
    bag, scale = torch.zeros(20000, 2), torch.tensor([1.0, 10.0])
    a = augment_bag(bag, np.random.default_rng(2), noise_generator(2), tile_dropout=0.0, feature_noise=0.5,
                    scale=scale)
    b = augment_bag(bag, np.random.default_rng(2), noise_generator(2), tile_dropout=0.0, feature_noise=0.5,
                    scale=scale)
    c = augment_bag(bag, np.random.default_rng(2), noise_generator(3), tile_dropout=0.0, feature_noise=0.5,
                    scale=scale)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)  # another fit seed, another noise stream
    np.testing.assert_allclose(a.std(0).numpy(), [0.5, 5.0], rtol=0.03)
    np.testing.assert_allclose(a.mean(0).numpy(), [0.0, 0.0], atol=0.05)


def test_noise_stream_leaves_the_global_torch_stream_alone() -> None:
    """Weights and dropout masks come from torch's global stream: drawing noise must not shift them."""
    torch.manual_seed(5)
    ref = torch.rand(8)
    torch.manual_seed(5)
    gen = noise_generator(5)
    noise = augment_bag(torch.zeros(4, 2), np.random.default_rng(5), gen, tile_dropout=0.0, feature_noise=1.0,
                        scale=None)
    assert torch.equal(torch.rand(8), ref)
    assert not torch.equal(noise.flatten()[:8], torch.randn(8, generator=torch.Generator().manual_seed(5)))
