"""DE methods = (slide representation, model), all cross-validated on the same patient folds (issue 14 §1–2).

A method is named ``<representation>/<model>``:

* representations: ``paper`` (mean of the top-l and bottom-l attention tiles of the tumour model, as in the
  paper) and ``summaries`` (all-tile summaries, ``histcode.genes.summaries``, fitted on each training fold);
* models: ``heads`` (the paper's per-gene linear heads, ``histcode.genes.train``) or a regularised linear
  model from ``histcode.genes.linear`` (``ridge``, ``enet``, ``pls``, ``rrr``) with nested-CV penalties.

``cross_validate_method`` returns held-out predictions in the DESIGN §4 long format, so the same statistics
(random baseline, Wilcoxon, BH) apply to every method.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from histcode.genes.linear import LINEAR_MODELS, LinearFit, de_probability, fit_linear
from histcode.genes.summaries import SlideSummaries, SummaryTransform
from histcode.genes.train import fit_de_model, long_predictions

REPRESENTATIONS = ("paper", "summaries")
MODELS = ("heads", *LINEAR_MODELS)
PAPER_METHOD = "paper/heads"


def parse_method(method: str) -> tuple[str, str]:
    """``"summaries/rrr"`` → ("summaries", "rrr"); ValueError naming the valid choices otherwise."""
    rep, sep, model = str(method).partition("/")
    if not sep or rep not in REPRESENTATIONS or model not in MODELS:
        raise ValueError(f"DE method {method!r}: expected <representation>/<model> with representation in "
                         f"{list(REPRESENTATIONS)} and model in {list(MODELS)} (e.g. 'summaries/rrr')")
    return rep, model


@dataclass
class Representations:
    """The inputs every method draws from, for the same patients in the same order."""

    patient_ids: list[str]
    paper: np.ndarray  # (P, 2D)
    summaries: SlideSummaries | None
    _fitted: dict[tuple[str, bytes, int], tuple[np.ndarray, SummaryTransform | None, float]] = field(
        default_factory=dict, repr=False)

    def design(self, rep: str, train: np.ndarray, seed: int) -> tuple[np.ndarray, SummaryTransform | None]:
        """X (P, F) for all patients, with every fitted part fitted on ``train`` patients only."""
        x, tf, _ = self.timed_design(rep, train, seed)
        return x, tf

    def timed_design(self, rep: str, train: np.ndarray, seed: int) -> tuple[np.ndarray, SummaryTransform | None,
                                                                             float]:
        """``design`` and the seconds its fit took. The fit depends on the images only (never the targets), so
        it is kept per (rep, train, seed): the methods sharing a representation and the shuffled-target null
        (``histcode.genes.null``) reuse it, and each reports the fit's own time, as if it had fitted it."""
        if rep == "paper":
            return np.asarray(self.paper, dtype=np.float64), None, 0.0
        if self.summaries is None:
            raise ValueError("summaries representation requested but no slide summaries were built")
        key = (rep, np.asarray(train, dtype=bool).tobytes(), int(seed))
        if key not in self._fitted:
            t0 = time.perf_counter()
            tf = self.summaries.fit(train, seed)
            x = self.summaries.transform(tf)
            x.setflags(write=False)
            self._fitted[key] = (x, tf, time.perf_counter() - t0)
        return self._fitted[key]


@dataclass
class MethodSettings:
    """Training settings shared by all methods (heads: lr/weight_decay/epochs; linear: inner CV folds)."""

    lr: float
    weight_decay: float
    epochs: int
    inner_folds: int
    log2_threshold: float
    seed: int


def fit_predict(model: str, x_train: np.ndarray, y_train: np.ndarray, c_train: np.ndarray, x_test: np.ndarray,
                genes: Sequence[str], s: MethodSettings, seed: int) -> tuple[np.ndarray, np.ndarray, object]:
    """(pred log10(fc+1) (T, G), P(DE) (T, G), fitted model) of one model on one training set."""
    if model == "heads":
        net = fit_de_model(x_train, y_train, c_train, genes, lr=s.lr, weight_decay=s.weight_decay, epochs=s.epochs,
                           seed=seed)
        with torch.no_grad():
            reg, prob = net.predict(torch.from_numpy(np.asarray(x_test, dtype=np.float32)))
        return reg.numpy().astype(np.float64), prob.numpy().astype(np.float64), net
    fit = fit_linear(model, x_train, y_train, inner_folds=s.inner_folds, seed=seed)
    pred = fit.predict(x_test)
    return pred, de_probability(pred, fit.y_scale, s.log2_threshold), fit


def cross_validate_method(method: str, reps: Representations, y_reg: np.ndarray, y_cls: np.ndarray,
                          genes: Sequence[str], folds: Mapping[str, int], s: MethodSettings) -> tuple[pd.DataFrame,
                                                                                                      dict]:
    """Held-out predictions of ``method`` for every patient (fold k: seed ``s.seed + k``) and a record
    ``{method, seconds, chosen penalties per fold}``."""
    rep, model = parse_method(method)
    ids = reps.patient_ids
    fold_arr = np.array([int(folds[str(p)]) for p in ids])
    frames, chosen = [], []
    seconds = 0.0
    for k in sorted(set(fold_arr.tolist())):
        test = fold_arr == k
        if (~test).sum() < 3:
            raise ValueError(f"fold {k}: fewer than 3 training patients; use fewer folds (de.n_folds)")
        x, _, fit_s = reps.timed_design(rep, ~test, s.seed + k)
        seconds += fit_s
        t0 = time.perf_counter()
        pred, prob, fitted = fit_predict(model, x[~test], y_reg[~test], y_cls[~test], x[test], genes, s, s.seed + k)
        if isinstance(fitted, LinearFit):
            chosen.append(fitted.chosen)
        seconds += time.perf_counter() - t0
        frames.append(long_predictions([p for p, t in zip(ids, test, strict=True) if t], genes, k, y_reg[test],
                                       pred, y_cls[test], prob))
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "method", method)
    record = {"method": method, "representation": rep, "model": model, "seconds": seconds,
              "n_features": int(x.shape[1])}
    for key in sorted({k for c in chosen for k in c}):
        record[f"chosen_{key}"] = float(np.median([c[key] for c in chosen if key in c]))
    return out, record


def fit_final(method: str, reps: Representations, y_reg: np.ndarray, y_cls: np.ndarray, genes: Sequence[str],
              s: MethodSettings) -> tuple[object, SummaryTransform | None, np.ndarray]:
    """The all-patient model of ``method``, its summary transform (None for ``paper``) and its design X (P, F)."""
    rep, model = parse_method(method)
    everyone = np.ones(len(reps.patient_ids), dtype=bool)
    x, tf = reps.design(rep, everyone, s.seed)
    _, _, fitted = fit_predict(model, x, y_reg, y_cls, x[:1], genes, s, s.seed)
    return fitted, tf, x
