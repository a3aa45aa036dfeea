import numpy as np
import torch
from scipy import stats

from histcode.genes import gene_mil
from histcode.genes.gene_mil import GeneAttentionMIL, fit_gene_mil, subsample


def _bags(n: int, rng: np.random.Generator):
    """Marker tiles (feature 1 = +3) carry the bag's value v in feature 2; elsewhere feature 2 is noise.

    Target = 0.5 + 0.3 v: only a model that attends to the marker tiles can read it.
    """
    bags, marks, y = [], [], []
    for _ in range(n):
        size = int(rng.integers(30, 60))
        v = rng.normal()
        b = rng.normal(size=(size, 5)).astype(np.float32)
        m = np.zeros(size, bool)
        m[rng.choice(size, max(2, int(rng.uniform(0.05, 0.3) * size)), replace=False)] = True
        b[m, 1] = 3.0
        b[m, 2] = v + rng.normal(scale=0.1, size=m.sum())
        bags.append(b)
        marks.append(m)
        y.append(0.5 + 0.3 * v)
    return bags, marks, np.array(y)


def test_streamed_attention_equals_forward(monkeypatch):
    torch.manual_seed(0)
    model = GeneAttentionMIL(5, hidden=8, attn_hidden=4).eval()
    bag = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    with torch.no_grad():
        full_pred = float(model(torch.from_numpy(bag)))
        _, scores, weights = model.forward_scaled(torch.from_numpy(bag))
    monkeypatch.setattr(gene_mil, "CHUNK", 3)
    pred, s, w = model.attend(bag)
    assert abs(pred - full_pred) < 1e-5
    np.testing.assert_allclose(s, scores.numpy(), atol=1e-5)
    np.testing.assert_allclose(w, weights.numpy(), atol=1e-6)
    assert abs(w.sum() - 1) < 1e-6


def test_gene_mil_learns_the_signal_and_attends_to_marker_tiles():
    rng = np.random.default_rng(1)
    bags, marks, y = _bags(40, rng)
    model = fit_gene_mil(bags[:30], y[:30], hidden=16, attn_hidden=8, lr=5e-3, weight_decay=1e-4, epochs=15,
                         seed=0, readout="embedding")
    preds, ratio = [], []
    for b, m in zip(bags[30:], marks[30:], strict=True):
        p, _, w = model.attend(b)
        preds.append(p)
        ratio.append(w[m].mean() / w[~m].mean())
    assert stats.pearsonr(y[30:], preds).statistic > 0.8
    assert np.median(ratio) > 5  # the signal-bearing marker tiles get far more attention than the rest


def test_subsample_is_bounded_and_sorted():
    rng = np.random.default_rng(0)
    idx = subsample(100, 10, rng)
    assert idx.size == 10 and np.all(np.diff(idx) > 0)
    assert subsample(5, 10, rng).tolist() == [0, 1, 2, 3, 4]


def _abundance_bags(n: int, rng: np.random.Generator):
    """Bulk-like targets: y = log10(1 + 10 · share of marker tiles); marker tiles (feature 0 = +2) are the
    gene's "cells", every other feature is noise. Returns bags, marker masks, y."""
    bags, marks, y = [], [], []
    for _ in range(n):
        size = int(rng.integers(40, 80))
        share = rng.uniform(0.02, 0.4)
        m = rng.uniform(size=size) < share
        m[rng.integers(size)] = True
        b = rng.normal(size=(size, 6)).astype(np.float32)
        b[m, 0] += 3.0
        bags.append(b)
        marks.append(m)
        y.append(np.log10(1 + 10 * m.mean()))
    return bags, marks, np.array(y)


def test_abundance_readout_attends_to_the_gene_cells_and_predicts_their_share():
    rng = np.random.default_rng(3)
    bags, marks, y = _abundance_bags(50, rng)
    model = fit_gene_mil(bags[:35], y[:35], hidden=8, attn_hidden=4, lr=3e-3, epochs=40, seed=0)
    assert model.readout == "abundance"
    preds, auc = [], []
    for b, m in zip(bags[35:], marks[35:], strict=True):
        p, s, _ = model.attend(b)
        preds.append(p)
        auc.append(np.mean(s[m][:, None] > s[~m][None, :]))
    assert stats.pearsonr(y[35:], preds).statistic > 0.8
    assert np.median(auc) > 0.9  # raw scores rank the marker tiles above the rest (positive slope)
    slope = torch.nn.functional.softplus(model.head.weight).item()
    assert slope > 0


def test_abundance_prediction_is_the_log_mean_exp_of_the_scores():
    torch.manual_seed(0)
    model = GeneAttentionMIL(5, hidden=8, attn_hidden=4).eval()
    bag = torch.from_numpy(np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32))
    with torch.no_grad():
        pred, scores, _ = model.forward_scaled(bag)
        slope = torch.nn.functional.softplus(model.head.weight).squeeze()
        expected = slope * (torch.logsumexp(scores, 0) - np.log(12)) + model.head.bias.squeeze()
    assert torch.allclose(pred, expected, atol=1e-6)


def test_pca_projection_keeps_the_leading_components_and_their_relative_variance(monkeypatch):
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(10, 10))
    bags = [(rng.normal(size=(30, 10)) @ mix).astype(np.float32) for _ in range(6)]
    model = fit_gene_mil(bags, np.arange(6, dtype=float), hidden=4, attn_hidden=2, epochs=1, pca_dim=3)
    assert tuple(model.x_proj.shape) == (10, 3) and model.pool.in_dim == 3 and model.pca_dim == 3
    tiles = np.concatenate(bags).astype(np.float64)
    with torch.no_grad():
        z = model._z(torch.from_numpy(tiles.astype(np.float32))).numpy().astype(np.float64)
    # same subspace and variances as sklearn's PCA of the standardised training tiles
    from sklearn.decomposition import PCA

    std = (tiles - tiles.mean(0)) / tiles.std(0)
    pca = PCA(3).fit(std)
    np.testing.assert_allclose(z.var(axis=0, ddof=1), pca.explained_variance_ / pca.explained_variance_[0],
                               rtol=1e-3)
    np.testing.assert_allclose(np.abs(np.corrcoef(z.T)), np.eye(3), atol=1e-3)
    np.testing.assert_allclose(np.abs(z[:, 0]), np.abs(pca.transform(std)[:, 0]) / np.sqrt(pca.explained_variance_[0]),
                               rtol=1e-3, atol=1e-4)
    with torch.no_grad():
        full = float(model(torch.from_numpy(bags[0])))
    monkeypatch.setattr(gene_mil, "CHUNK", 7)
    assert abs(model.attend(bags[0])[0] - full) < 1e-5


def test_unknown_readout_is_refused():
    import pytest

    with pytest.raises(ValueError, match="readout"):
        GeneAttentionMIL(4, readout="sum")
