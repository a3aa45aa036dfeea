import numpy as np
import pandas as pd
import torch
from scipy import stats

from histcode.genes.heads import DEModel
from histcode.genes.train import cross_validate, fit_de_model, long_predictions

HP = {"lr": 0.01, "weight_decay": 0.01, "epochs": 200}


def _planted(p: int = 90, f: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(p, f)).astype(np.float32) * rng.uniform(0.5, 20, size=f).astype(np.float32) + 3.0
    z = (x - x.mean(0)) / x.std(0)
    w = rng.normal(size=f)
    signal = z @ w / np.linalg.norm(w)
    y = np.stack([
        0.5 + 0.2 * signal + rng.normal(scale=0.05, size=p),       # planted
        1.0 - 0.1 * signal + rng.normal(scale=0.03, size=p),       # planted, negative
        rng.normal(0.5, 0.2, size=p),                              # null
        rng.normal(0.3, 0.1, size=p),                              # null
        rng.normal(0.8, 0.3, size=p),                              # null
    ], axis=1)
    labels = np.stack([(signal > 0.3), (signal < -0.3), rng.random(p) > 0.5, rng.random(p) > 0.7,
                       rng.random(p) > 0.5], axis=1).astype(float)
    return x, y, labels


def test_cross_validation_recovers_planted_genes_and_not_null_genes():
    x, y, labels = _planted()
    genes = ["P1", "P2", "N1", "N2", "N3"]
    pids = [f"p{i}" for i in range(len(x))]
    folds = {p: i % 5 for i, p in enumerate(pids)}
    pred, models = cross_validate(x, y, labels, pids, genes, folds, seed=0, progress=False, **HP)
    assert len(pred) == len(x) * len(genes) and sorted(models) == [0, 1, 2, 3, 4]
    assert (pred.groupby("patient_id")["fold"].nunique() == 1).all()
    r = {g: stats.pearsonr(s["y_true_log10fc"], s["y_pred_log10fc"]).statistic for g, s in pred.groupby("gene")}
    assert r["P1"] > 0.85 and r["P2"] > 0.85
    assert np.mean([abs(r[g]) for g in ("N1", "N2", "N3")]) < 0.3
    acc = {g: ((s["p_label"] > 0.5).astype(int) == s["y_true_label"].astype(int)).mean()
           for g, s in pred.groupby("gene")}
    assert acc["P1"] > 0.8 and acc["P2"] > 0.8
    # predictions come back in log10(fc+1) units, not standardised ones
    p1 = pred[pred["gene"] == "P1"]
    assert abs(p1["y_pred_log10fc"].mean() - 0.5) < 0.05


def test_de_model_is_deterministic_and_outputs_both_heads():
    x, y, labels = _planted(40, 5)
    a = fit_de_model(x, y, labels, list("ABCDE"), seed=3, **HP)
    b = fit_de_model(x, y, labels, list("ABCDE"), seed=3, **HP)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    with torch.no_grad():
        out = a(torch.from_numpy(x[:3]))
        reg, prob = a.predict(torch.from_numpy(x[:3]))
    assert isinstance(a, DEModel) and out.shape == (3, 5, 2)
    assert torch.equal(out[..., 0], reg) and torch.equal(out[..., 1], prob)
    assert float(prob.min()) >= 0 and float(prob.max()) <= 1


def test_missing_targets_are_masked_not_propagated():
    x, y, labels = _planted(40, 5)
    y[:5, 0] = np.nan
    labels[:5, 1] = np.nan
    model = fit_de_model(x, y, labels, list("ABCDE"), seed=0, **HP)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_long_predictions_layout():
    df = long_predictions(["a", "b"], ["G1", "G2", "G3"], 2, np.arange(6.0).reshape(2, 3),
                          np.ones((2, 3)), np.array([[1, 0, np.nan], [0, 1, 1]]), np.full((2, 3), 0.3))
    assert list(df.columns) == ["patient_id", "gene", "fold", "y_true_log10fc", "y_pred_log10fc",
                                "y_true_label", "p_label"]
    assert df["patient_id"].tolist() == ["a"] * 3 + ["b"] * 3 and df["gene"].tolist() == ["G1", "G2", "G3"] * 2
    assert df["y_true_log10fc"].tolist() == [0, 1, 2, 3, 4, 5] and (df["fold"] == 2).all()
    assert pd.isna(df["y_true_label"].iloc[2]) and df["y_true_label"].iloc[0] == 1
