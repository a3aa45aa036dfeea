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
                         seed=0)
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
