"""All-tile slide summaries: fitted on training patients only, proportions and quantiles as documented."""

from __future__ import annotations

import numpy as np
import pytest

from histcode.genes.summaries import SummarySettings, slide_stats, summaries_from_bags


def bags(n_patients: int = 8, seed: int = 0) -> list[np.ndarray]:
    """Each slide mixes two tile kinds (features around +4 or -4 in every dim) in a patient-specific share."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_patients):
        n = 50 + 10 * i
        kind = rng.random(n) < (i + 1) / (n_patients + 1)
        f = rng.normal(size=(n, 5)).astype(np.float32)
        f += np.where(kind, 4.0, -4.0)[:, None]
        out.append(f)
    return out


def test_slide_stats_mean_uses_every_tile_and_sample_is_bounded() -> None:
    f = np.arange(40, dtype=np.float32).reshape(20, 2)
    mean, sample = slide_stats(f, 5, np.random.default_rng(0))
    np.testing.assert_allclose(mean, f.mean(0))
    assert sample.shape == (5, 2) and all(any((row == r).all() for r in f) for row in sample)
    with pytest.raises(ValueError, match="non-empty"):
        slide_stats(np.zeros((0, 2)), 5, np.random.default_rng(0))


def test_design_columns_and_prototype_proportions() -> None:
    b = bags()
    s = summaries_from_bags([f"p{i}" for i in range(8)], b, SummarySettings(pca_dim=3, n_prototypes=2), seed=0)
    train = np.array([True] * 6 + [False] * 2)
    tf = s.fit(train, seed=0)
    x = s.transform(tf)
    assert x.shape == (8, 3 + 3 * 3 + 2) and tf.names()[-1] == "proto1"
    props = x[:, -2:]
    np.testing.assert_allclose(props.sum(1), 1.0)
    share = np.array([(bb.mean(1) > 0).mean() for bb in b])  # the +4 kind's share per slide
    assert abs(np.corrcoef(share, props[:, 0])[0, 1]) > 0.99  # one prototype per tile kind
    # the projected mean is the mean of projected tiles (PCA is linear)
    np.testing.assert_allclose(x[0, :3], tf.project(b[0]).mean(0), atol=1e-6)


def test_transform_is_fitted_on_training_patients_only() -> None:
    b = bags()
    train = np.array([True] * 6 + [False] * 2)
    s1 = summaries_from_bags([f"p{i}" for i in range(8)], b, SummarySettings(pca_dim=3, n_prototypes=3), seed=0)
    changed = list(b)
    changed[7] = changed[7] * 10 + 50  # a held-out slide changes beyond recognition
    s2 = summaries_from_bags([f"p{i}" for i in range(8)], changed, SummarySettings(pca_dim=3, n_prototypes=3),
                             seed=0)
    x1, x2 = s1.design(train, seed=0), s2.design(train, seed=0)
    np.testing.assert_allclose(x1[:7], x2[:7])
    assert not np.allclose(x1[7], x2[7])


def test_centred_slides_keep_composition_under_a_slide_wide_shift() -> None:
    b = bags()
    shifted = list(b)
    shifted[2] = shifted[2] + 3.0  # e.g. a stain/scanner offset of one slide
    settings = SummarySettings(pca_dim=3, n_prototypes=2, center_slides=True)
    ids = [f"p{i}" for i in range(8)]
    x1 = summaries_from_bags(ids, b, settings, seed=0).design(np.ones(8, bool), seed=0)
    x2 = summaries_from_bags(ids, shifted, settings, seed=0).design(np.ones(8, bool), seed=0)
    np.testing.assert_allclose(x1[:, 3:], x2[:, 3:], atol=1e-6)  # quantiles and proportions
    assert not np.allclose(x1[2, :3], x2[2, :3])  # the mean part carries the shift
