"""H&E augmentations: shapes, range, determinism, and the invariants each op must keep."""

from __future__ import annotations

import dataclasses

import torch

from histcode.ssl.augment import (
    AugmentConfig,
    HEAugment,
    flips_and_rotations,
    gaussian_blur,
    hed_jitter,
    random_resized_crop,
)


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_views_have_shape_range_and_are_seeded() -> None:
    x = torch.rand(8, 3, 48, 48, generator=_g(0))
    aug = HEAugment(AugmentConfig(out_px=32))
    a, b = aug(x, _g(1)), aug(x, _g(1))
    assert a.shape == (8, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, _g(2)))


def test_full_crop_of_same_size_is_identity() -> None:
    x = torch.rand(2, 3, 16, 16, generator=_g(0))
    y = random_resized_crop(x, 16, _g(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_flips_and_rotations_only_permute_pixels() -> None:
    x = torch.rand(16, 3, 8, 8, generator=_g(3))
    y = flips_and_rotations(x, _g(4), 0.5, 0.5, True)
    for i in range(16):
        assert torch.equal(torch.sort(y[i].flatten()).values, torch.sort(x[i].flatten()).values)
    assert not torch.equal(x, y)


def test_hed_jitter_with_zero_sigma_is_identity_on_tissue_colours() -> None:
    x = torch.rand(4, 3, 8, 8, generator=_g(5)) * 0.8 + 0.1
    torch.testing.assert_close(hed_jitter(x, _g(6), 0.0, 1.0), x, atol=1e-5, rtol=0)
    assert not torch.allclose(hed_jitter(x, _g(6), 0.2, 1.0), x, atol=1e-3)


def test_blur_keeps_constant_images_and_smooths_noise() -> None:
    const = torch.full((2, 3, 12, 12), 0.3)
    torch.testing.assert_close(gaussian_blur(const, _g(0), (0.5, 2.0), 1.0), const)
    noise = torch.rand(2, 3, 24, 24, generator=_g(1))
    assert gaussian_blur(noise, _g(0), (1.5, 2.0), 1.0).std() < noise.std() * 0.6


def test_disabled_colour_ops_leave_crop_only() -> None:
    cfg = dataclasses.replace(AugmentConfig(out_px=16), p_hflip=0, p_vflip=0, rot90=False, p_hed=0, p_jitter=0,
                              p_gray=0, p_blur=0, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    x = torch.rand(3, 3, 16, 16, generator=_g(7))
    torch.testing.assert_close(HEAugment(cfg)(x, _g(8)), x, atol=1e-5, rtol=0)
