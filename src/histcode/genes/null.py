"""The null distribution of a DE method's held-out correlations: its cross-validation re-run on shuffled targets.

A per-gene test that compares a gene's pooled held-out r with a random or shuffled *prediction* treats the
held-out predictions as exchangeable across patients. They are not: each fold's predictions come from a model
fit on the other folds' targets, so at ~13 patients such tests call null genes significant (see
``histcode.metrics.de_stats``, test ``cv_null``). Re-running the method's whole cross-validation (nested
penalty choice included) with the patients' target rows permuted, every gene at once, keeps that dependence
and the genes' correlation structure, and breaks only the image → expression link. The fitted slide
summaries depend on the images alone and are reused (``Representations.design``), so a shuffle costs one
cross-validation of the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from histcode.console import tqdm
from histcode.genes.methods import MethodSettings, Representations, cross_validate_method
from histcode.metrics.de_stats import columnwise_pearson, matrices

log = logging.getLogger(__name__)

NULL_COLUMNS = ("method", "shuffle", "gene", "pearson_r")


def empty_null() -> pd.DataFrame:
    """The null table of a run without shuffles."""
    return pd.DataFrame(columns=list(NULL_COLUMNS))


def target_permutations(n_patients: int, n_shuffles: int, seed: int) -> list[np.ndarray]:
    """The patient permutations of the null runs, in order (the DE study re-uses them so its null is train_de's)."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n_patients) for _ in range(n_shuffles)]


def shuffled_cv_null(method: str, reps: Representations, y_reg: np.ndarray, y_cls: np.ndarray,
                     genes: Sequence[str], folds: Mapping[str, int], settings: MethodSettings, *,
                     n_shuffles: int, seed: int, progress: bool = False) -> pd.DataFrame:
    """Long table (method, shuffle, gene, pearson_r): per shuffle b the pooled held-out Pearson r of every gene
    after cross-validating ``method`` on targets whose patient rows were permuted (seeded by ``seed``); no rows
    for ``n_shuffles`` 0."""
    if n_shuffles < 0:
        raise ValueError(f"shuffled_cv_null: n_shuffles must be >= 0, got {n_shuffles}")
    if n_shuffles == 0:
        return empty_null()
    perms = target_permutations(len(reps.patient_ids), n_shuffles, seed)
    frames = []
    t0 = time.perf_counter()
    for b in tqdm(range(n_shuffles), desc=f"CV null {method}", disable=not progress):
        perm = perms[b]
        pred, _ = cross_validate_method(method, reps, y_reg[perm], y_cls[perm], genes, folds, settings)
        truth, guess, _ = matrices(pred.drop(columns="method"))
        r = columnwise_pearson(truth.to_numpy(np.float64), guess.to_numpy(np.float64))
        frames.append(pd.DataFrame({"method": method, "shuffle": b, "gene": list(truth.columns), "pearson_r": r}))
    log.info("DE CV null of %s: %d shuffles in %.1f s", method, n_shuffles, time.perf_counter() - t0)
    return pd.concat(frames, ignore_index=True)[list(NULL_COLUMNS)]
