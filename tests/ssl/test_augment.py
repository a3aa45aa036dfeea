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
    jpeg_compress,
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
                              p_gray=0, p_blur=0, p_jpeg=0, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    x = torch.rand(3, 3, 16, 16, generator=_g(7))
    torch.testing.assert_close(HEAugment(cfg)(x, _g(8)), x, atol=1e-5, rtol=0)


def test_stain_vector_jitter_changes_hue_not_structure() -> None:
    x = torch.rand(4, 3, 8, 8, generator=_g(5)) * 0.8 + 0.1
    torch.testing.assert_close(hed_jitter(x, _g(6), 0.0, 1.0, 0.0), x, atol=1e-5, rtol=0)
    y = hed_jitter(x, _g(6), 0.0, 1.0, 0.1)
    assert (y - x).abs().mean() > 5e-3  # another stain hue
    # a recolouring per pixel: the ranking of pixel brightness within a tile is kept
    corr = torch.corrcoef(torch.stack([x.mean(1).flatten(), y.mean(1).flatten()]))[0, 1]
    assert corr > 0.9


def test_jpeg_compress_gives_each_selected_tile_its_own_quality_and_place() -> None:
    """The batch is encoded one quality at a time and decoded in one call: each tile must come back in its own
    slot, compressed at the quality drawn for it, and unselected tiles untouched."""
    from torchvision.io import decode_jpeg, encode_jpeg

    n = 16
    x = torch.rand(n, 3, 24, 24, generator=_g(3))
    x[:, :, :12] *= torch.linspace(0.2, 1.0, n).view(n, 1, 1, 1)  # tiles differ in content, not only noise
    q = torch.randint(40, 44, (n,), generator=_g(4))  # the same draw jpeg_compress makes first
    y = jpeg_compress(x, _g(4), (40, 43), 0.7)
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    selected = [i for i in range(n) if not torch.equal(y[i], x[i])]
    assert 4 <= len(selected) < n and len(set(q[selected].tolist())) >= 3  # several tiles share a quality
    for i in range(n):
        if i in selected:
            want = decode_jpeg(encode_jpeg(u8[i], quality=int(q[i]))).float() / 255.0
            assert torch.equal(y[i], want), i
        else:
            assert torch.equal(y[i], x[i])


def test_jpeg_compress_is_lossy_close_and_seeded() -> None:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = torch.stack([0.5 + 0.3 * torch.sin(6 * xx), 0.4 + 0.2 * yy, 0.6 - 0.2 * xx]).expand(4, 3, 32, 32)
    x = (smooth + 0.1 * torch.rand(4, 3, 32, 32, generator=_g(1))).clamp(0, 1)
    assert torch.equal(jpeg_compress(x, _g(2), (40, 60), 0.0), x)
    y = jpeg_compress(x, _g(2), (40, 60), 1.0)
    assert y.shape == x.shape and y.dtype == x.dtype
    err = (y - x).abs().mean()
    assert 2e-3 < err < 0.05, err  # visible compression artefacts, the same image
    assert torch.equal(y, jpeg_compress(x, _g(2), (40, 60), 1.0))
    assert (jpeg_compress(x, _g(2), (95, 95), 1.0) - x).abs().mean() < err  # higher quality, smaller error


def test_each_sample_gets_its_own_move_and_unselected_samples_stay_bit_identical() -> None:
    x = torch.rand(32, 3, 8, 8, generator=_g(7))
    g = _g(8)
    h, v = torch.rand(32, generator=g) < 0.5, torch.rand(32, generator=g) < 0.5
    k = torch.randint(0, 4, (32,), generator=g)
    y = flips_and_rotations(x, _g(8), 0.5, 0.5, True)  # the same draws, in the same order
    for i in range(32):
        ref = x[i]
        ref = ref.flip(2) if h[i] else ref
        ref = ref.flip(1) if v[i] else ref
        assert torch.equal(y[i], torch.rot90(ref, int(k[i]), dims=(1, 2))), i
    blurred = gaussian_blur(x, _g(9), (0.5, 2.0), 0.5)
    untouched = [i for i in range(32) if torch.equal(blurred[i], x[i])]
    assert 4 <= len(untouched) <= 28  # p = 0.5: some samples are left exactly as they were, the others blurred


def test_hed_jitter_matches_unmixing_then_remixing_each_sample() -> None:
    """The folded affine map in OD space equals the textbook two steps: stains = OD · M⁻¹, s' = α·s + β,
    RGB = exp(−s' · M_new), with the same per-sample draws."""
    x = torch.rand(6, 3, 5, 5, generator=_g(10)) * 0.9 + 0.05
    sigma, vec = 0.2, 0.05
    y = hed_jitter(x, _g(11), sigma, 1.0, vec)
    g = _g(11)
    from histcode.ssl.augment import RGB_FROM_HED

    m = RGB_FROM_HED / RGB_FROM_HED.norm(dim=1, keepdim=True)
    alpha = torch.rand(6, 3, generator=g) * 2 * sigma + 1 - sigma
    beta = torch.rand(6, 3, generator=g) * 2 * sigma - sigma
    m_new = (m.unsqueeze(0) + torch.randn(6, 3, 3, generator=g) * vec).clamp_min(1e-3)
    m_new = m_new / m_new.norm(dim=2, keepdim=True)
    for i in range(6):
        od = -torch.log(x[i].clamp_min(1 / 255)).reshape(3, -1).double()  # (RGB, px)
        stains = torch.linalg.inv(m).double().T @ od * alpha[i, :, None].double() + beta[i, :, None].double()
        ref = torch.exp(-(m_new[i].double().T @ stains)).clamp(0, 1).reshape(3, 5, 5)
        torch.testing.assert_close(y[i].double(), ref, atol=2e-6, rtol=0)
