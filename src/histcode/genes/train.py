"""Training of the per-gene linear heads: one fit per CV fold by patient, plus a final fit on everyone.

Full-batch Adam with L2 weight decay on the weights (not the biases) for a fixed number of epochs: the
inputs are a few hundred patients × 2D features, so one batch is the whole fold and there is nothing to
early-stop on without leaking the held-out fold. Inputs are standardised with the training fold's mean/std;
regression targets are centred and scaled per gene (gene heads are independent, so this only equalises the
effective step size across genes; predictions are mapped back to log10(fc+1)). Missing targets are masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from histcode.console import tqdm
from histcode.genes.heads import DEModel


def _scale(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std of (N, K) with NaNs ignored; std 0/NaN → 1 so constant columns stay finite."""
    with np.errstate(all="ignore"):
        mean = np.nan_to_num(np.nanmean(a, axis=0), nan=0.0)
        std = np.nanstd(a, axis=0)
    std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def fit_de_model(
    x: np.ndarray,
    y_reg: np.ndarray,
    y_cls: np.ndarray,
    genes: Sequence[str],
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    seed: int,
) -> DEModel:
    """Fit ``DEModel`` on x (P, F), y_reg (P, G) log10(fc+1) and y_cls (P, G) in {0, 1} (NaN = missing)."""
    x = np.asarray(x, dtype=np.float32)
    y_reg = np.asarray(y_reg, dtype=np.float32)
    y_cls = np.asarray(y_cls, dtype=np.float32)
    p, f = x.shape
    if y_reg.shape != (p, len(genes)) or y_cls.shape != (p, len(genes)):
        raise ValueError(f"targets {y_reg.shape}/{y_cls.shape} do not match {p} patients × {len(genes)} genes")
    if p < 2:
        raise ValueError(f"need >= 2 training patients, got {p}")
    torch.manual_seed(seed)
    model = DEModel(f, genes)
    xm, xs = _scale(x)
    ym, ys = _scale(y_reg)
    model.x_mean.copy_(torch.from_numpy(xm))
    model.x_scale.copy_(torch.from_numpy(xs))
    model.y_mean.copy_(torch.from_numpy(ym))
    model.y_scale.copy_(torch.from_numpy(ys))

    z = model.standardise(torch.from_numpy(x))
    yr = torch.from_numpy((y_reg - ym) / ys)
    reg_mask = torch.isfinite(yr)
    yr = torch.nan_to_num(yr)
    yc_raw = torch.from_numpy(y_cls)
    cls_mask = torch.isfinite(yc_raw)
    yc = torch.nan_to_num(yc_raw).long().clamp(0, 1)

    decay = [prm for n, prm in model.named_parameters() if n.endswith("weight")]
    no_decay = [prm for n, prm in model.named_parameters() if not n.endswith("weight")]
    opt = torch.optim.Adam([{"params": decay, "weight_decay": weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}], lr=lr, fused=True)
    ce = nn.CrossEntropyLoss(reduction="none")
    model.train()
    for _ in range(epochs):
        opt.zero_grad(set_to_none=True)
        pred = model.regression(z)
        mse = ((pred - yr) ** 2 * reg_mask).sum() / reg_mask.sum().clamp(min=1)
        logits = model.classifier(z)
        nll = ce(logits.reshape(-1, 2), yc.reshape(-1)).view_as(yc)
        xent = (nll * cls_mask).sum() / cls_mask.sum().clamp(min=1)
        (mse + xent).backward()
        opt.step()
    model.eval()
    return model


def cross_validate(
    x: np.ndarray,
    y_reg: np.ndarray,
    y_cls: np.ndarray,
    patient_ids: Sequence[str],
    genes: Sequence[str],
    folds: Mapping[str, int],
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    seed: int,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[int, DEModel]]:
    """Held-out predictions for every patient (long format, DESIGN §4 DE predictions) and the fold models.

    Fold k trains on patients whose held-out fold is not k (seed ``seed + k``) and predicts fold k.
    """
    fold_arr = np.array([int(folds[str(p)]) for p in patient_ids])
    frames, models = [], {}
    for k in tqdm(sorted(set(fold_arr.tolist())), desc="DE folds", disable=not progress):
        test = fold_arr == k
        if (~test).sum() < 2:
            raise ValueError(f"fold {k}: fewer than 2 training patients; use fewer folds (de.n_folds)")
        model = fit_de_model(x[~test], y_reg[~test], y_cls[~test], genes, lr=lr, weight_decay=weight_decay,
                             epochs=epochs, seed=seed + k)
        with torch.no_grad():
            reg, prob = model.predict(torch.from_numpy(np.asarray(x[test], dtype=np.float32)))
        frames.append(long_predictions([p for p, t in zip(patient_ids, test, strict=True) if t], genes, k,
                                       y_reg[test], reg.numpy(), y_cls[test], prob.numpy()))
        models[k] = model
    return pd.concat(frames, ignore_index=True), models


def long_predictions(patients: Sequence[str], genes: Sequence[str], fold: int, y_reg: np.ndarray,
                     pred: np.ndarray, y_cls: np.ndarray, prob: np.ndarray) -> pd.DataFrame:
    """(P, G) arrays → one row per (patient, gene) with the DESIGN §4 columns."""
    p, g = len(patients), len(genes)
    labels = pd.array(np.where(np.isfinite(y_cls), y_cls, np.nan).reshape(-1), dtype="Float64").astype("Int64")
    return pd.DataFrame({
        "patient_id": np.repeat(np.asarray(patients, dtype=object), g),
        "gene": np.tile(np.asarray(genes, dtype=object), p),
        "fold": np.full(p * g, fold, dtype=np.int64),
        "y_true_log10fc": np.asarray(y_reg, dtype=np.float64).reshape(-1),
        "y_pred_log10fc": np.asarray(pred, dtype=np.float64).reshape(-1),
        "y_true_label": labels,
        "p_label": np.asarray(prob, dtype=np.float64).reshape(-1),
    })
