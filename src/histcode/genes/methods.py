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

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from histcode.genes.linear import LINEAR_MODELS, LinearFit, de_probability, fit_linear
from histcode.genes.summaries import SlideSummaries, SummarySettings, SummaryTransform
from histcode.genes.train import fit_de_model, long_predictions

REPRESENTATIONS = ("paper", "summaries")
MODELS = ("heads", *LINEAR_MODELS)
PAPER_METHOD = "paper/heads"

# ``de`` keys each part of a method reads once its inputs are loaded, so a study can change them per trial
SETTING_KEYS: dict[str, tuple[str, ...]] = {
    "paper": (),
    "summaries": ("summary_pca_dim", "n_prototypes", "summary_center_slides", "summary_quantiles"),
    "heads": ("lr", "weight_decay", "epochs"),
    **{m: ("inner_folds",) for m in LINEAR_MODELS},
}
# ``de`` keys a method also depends on that are fixed when its inputs are read from the slides' files
INPUT_KEYS: dict[str, tuple[str, ...]] = {"paper": ("top_l", "bottom_l"), "summaries": ("summary_max_tiles",)}


def parse_method(method: str) -> tuple[str, str]:
    """``"summaries/rrr"`` → ("summaries", "rrr"); ValueError naming the valid choices otherwise."""
    rep, sep, model = str(method).partition("/")
    if not sep or rep not in REPRESENTATIONS or model not in MODELS:
        raise ValueError(f"DE method {method!r}: expected <representation>/<model> with representation in "
                         f"{list(REPRESENTATIONS)} and model in {list(MODELS)} (e.g. 'summaries/rrr')")
    return rep, model


def method_keys(method: str) -> tuple[str, ...]:
    """The ``de`` keys that change ``method``'s predictions once its inputs are loaded (what a study may
    search)."""
    rep, model = parse_method(method)
    return (*SETTING_KEYS[rep], *SETTING_KEYS[model])


def check_searchable(method: str, keys: Sequence[str], where: str, *, must_change: bool = True) -> None:
    """ValueError naming ``keys`` that cannot change ``method`` per trial, and what to search instead
    (``must_change`` False: only keys a trial cannot change, e.g. a study's fixed budget)."""
    rep, _ = parse_method(method)
    searchable = method_keys(method)
    inputs = [k for k in keys if k in INPUT_KEYS[rep]]
    if inputs:
        raise ValueError(f"{where}: {inputs} fix which tiles DE method {method} reads from every slide, so a trial "
                         f"cannot change them; search {list(searchable)}, or set them in `de` and rerun")
    idle = [k for k in keys if k not in searchable]
    if idle and must_change:
        raise ValueError(f"{where}: {idle} do not change DE method {method}; search {list(searchable)}, or tune "
                         "the method these keys belong to (tune.de.method)")


@dataclass
class Representations:
    """The inputs every method draws from, for the same patients in the same order."""

    patient_ids: list[str]
    paper: np.ndarray  # (P, 2D)
    summaries: SlideSummaries | None
    _fitted: dict[tuple[str, bytes, int], tuple[np.ndarray, SummaryTransform | None, float]] = field(
        default_factory=dict, repr=False)

    def with_summary_settings(self, settings: SummarySettings) -> Representations:
        """The same patients and tiles summarised with other ``settings`` (nothing re-read; its own fit cache).
        ``max_tiles`` is fixed by the tiles already sampled."""
        if self.summaries is None or settings == self.summaries.settings:
            return self
        if settings.max_tiles != self.summaries.settings.max_tiles:
            raise ValueError(f"summary_max_tiles {settings.max_tiles}: the slides were sampled with "
                             f"{self.summaries.settings.max_tiles} tiles each; reload them to change it")
        return Representations(self.patient_ids, self.paper, dataclasses.replace(self.summaries, settings=settings))

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


@dataclass(frozen=True)
class FoldResult:
    """One outer fold of a method: held-out predictions (long format), penalties chosen, design width, seconds."""

    predictions: pd.DataFrame
    chosen: dict[str, float] | None
    n_features: int
    seconds: float


def fold_predictions(method: str, reps: Representations, y_reg: np.ndarray, y_cls: np.ndarray,
                     genes: Sequence[str], fold_arr: np.ndarray, k: int, s: MethodSettings) -> FoldResult:
    """Fold ``k`` of ``method``: fitted on the patients of other folds (seed ``s.seed + k``), predicted on fold
    ``k``'s. The one fold loop of train_de's CV and of the DE study."""
    rep, model = parse_method(method)
    test = fold_arr == k
    if (~test).sum() < 3:
        raise ValueError(f"fold {k}: fewer than 3 training patients; use fewer folds (de.n_folds)")
    x, _, fit_s = reps.timed_design(rep, ~test, s.seed + k)
    t0 = time.perf_counter()
    pred, prob, fitted = fit_predict(model, x[~test], y_reg[~test], y_cls[~test], x[test], genes, s, s.seed + k)
    seconds = fit_s + time.perf_counter() - t0
    ids = [p for p, t in zip(reps.patient_ids, test, strict=True) if t]
    frame = long_predictions(ids, genes, k, y_reg[test], pred, y_cls[test], prob)
    return FoldResult(frame, fitted.chosen if isinstance(fitted, LinearFit) else None, int(x.shape[1]), seconds)


def patient_fold_array(reps: Representations, folds: Mapping[str, int]) -> np.ndarray:
    """Each patient's outer fold, in ``reps.patient_ids`` order."""
    return np.array([int(folds[str(p)]) for p in reps.patient_ids])


def cross_validate_method(method: str, reps: Representations, y_reg: np.ndarray, y_cls: np.ndarray,
                          genes: Sequence[str], folds: Mapping[str, int], s: MethodSettings) -> tuple[pd.DataFrame,
                                                                                                      dict]:
    """Held-out predictions of ``method`` for every patient (fold k: seed ``s.seed + k``) and a record
    ``{method, seconds, chosen penalties per fold}``."""
    rep, model = parse_method(method)
    fold_arr = patient_fold_array(reps, folds)
    results = [fold_predictions(method, reps, y_reg, y_cls, genes, fold_arr, k, s)
               for k in sorted(set(fold_arr.tolist()))]
    out = pd.concat([r.predictions for r in results], ignore_index=True)
    out.insert(0, "method", method)
    chosen = [r.chosen for r in results if r.chosen is not None]
    record = {"method": method, "representation": rep, "model": model,
              "seconds": float(sum(r.seconds for r in results)), "n_features": results[-1].n_features}
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
