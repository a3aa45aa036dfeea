"""Pooling modules: the paper's formula (NumPy reference), invariants (hypothesis), streaming = full."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from histcode.mil.methods.basic import GatedAttentionPool
from histcode.mil.pooling import create_pooling, pooling_names

POOLINGS = ["gated_attention", "mean", "max"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def numpy_gated_attention(
    pool: GatedAttentionPool, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ilse et al. eq. 9 written out: e = relu(W1 h + b1); a = softmax(w^T (tanh(V e) * sigm(U e)))."""
    w1, b1 = _np(pool.embed[0].weight), _np(pool.embed[0].bias)
    v, bv = _np(pool.attn_v[0].weight), _np(pool.attn_v[0].bias)
    u, bu = _np(pool.attn_u[0].weight), _np(pool.attn_u[0].bias)
    w, bw = _np(pool.attn_w.weight), _np(pool.attn_w.bias)
    e = np.maximum(h @ w1.T + b1, 0)
    gate = np.tanh(e @ v.T + bv) * (1 / (1 + np.exp(-(e @ u.T + bu))))
    s = (gate @ w.T + bw)[:, 0]
    a = np.exp(s - s.max())
    a /= a.sum()
    return a @ e, s, a


def test_gated_attention_matches_numpy_reference() -> None:
    torch.manual_seed(0)
    pool = GatedAttentionPool(32, hidden=24, attn_hidden=12, dropout=0.25).eval()
    h = np.random.default_rng(0).normal(size=(57, 32))
    out = pool(torch.from_numpy(h).float())
    z, s, a = numpy_gated_attention(pool, h)
    np.testing.assert_allclose(_np(out.scores), s, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(out.weights), a, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(_np(out.pooled), z, rtol=1e-5, atol=1e-5)


bags = st.tuples(st.integers(1, 40), st.integers(0, 2**16), st.sampled_from(POOLINGS))


@settings(max_examples=30, deadline=None)
@given(bags)
def test_weights_sum_to_one_and_pooling_is_permutation_invariant(case: tuple[int, int, str]) -> None:
    n, seed, name = case
    torch.manual_seed(seed % 97)
    pool = create_pooling(name, 8, hidden=6, attn_hidden=4).eval()
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 8, generator=g)
    perm = torch.randperm(n, generator=g)
    with torch.no_grad():
        out, out_p = pool(h), pool(h[perm])
    assert out.weights.shape == (n,) and bool((out.weights >= 0).all())
    assert float(out.weights.sum()) == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(out_p.pooled, out.pooled, rtol=1e-5, atol=1e-5)
    if name != "max":  # max's argmax counts can move between tied (zero) tiles; pooled vector is exact
        torch.testing.assert_close(out_p.weights, out.weights[perm], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", POOLINGS)
def test_bag_of_one_tile(name: str) -> None:
    torch.manual_seed(0)
    pool = create_pooling(name, 5, hidden=7, attn_hidden=3).eval()
    h = torch.randn(1, 5)
    out = pool(h)
    assert out.weights.tolist() == [1.0]
    torch.testing.assert_close(out.pooled, pool.embed(h)[0])
    stream = pool.forward_stream([h])
    torch.testing.assert_close(stream.pooled, out.pooled)


@pytest.mark.parametrize("name", POOLINGS)
@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_streamed_pooling_equals_full_bag(name: str, chunk: int) -> None:
    torch.manual_seed(1)
    pool = create_pooling(name, 16, hidden=32, attn_hidden=8).eval()
    h = torch.randn(300, 16) * 3  # large scores exercise the running-max rescaling
    full = pool(h)
    stream = pool.forward_stream(h.split(chunk))
    torch.testing.assert_close(stream.pooled, full.pooled, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stream.weights, full.weights, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(stream.scores, full.scores, rtol=1e-5, atol=1e-5)


def test_factory_errors_name_the_valid_choices() -> None:
    assert pooling_names() == ["abmil", "clam_sb", "dsmil", "gated_attention", "max", "mean", "mil_rnn", "transmil"]
    with pytest.raises(ValueError, match=r"unknown MIL method 'attention'.*clam_sb.*transmil.*mil.baselines"):
        create_pooling("attention", 4)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['hiden'\]"):
        create_pooling("mean", 4, hiden=3)
    assert not hasattr(create_pooling("mean", 4, attn_hidden=3), "attn_hidden")  # unused settings dropped


def test_bad_bags_raise_clear_errors() -> None:
    pool = create_pooling("gated_attention", 4, hidden=3, attn_hidden=2)
    with pytest.raises(ValueError, match="empty bag"):
        pool(torch.zeros(0, 4))
    with pytest.raises(ValueError, match=r"expected a bag of shape \(N, 4\), got \(3, 5\)"):
        pool(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="empty bag"):
        pool.forward_stream([])
