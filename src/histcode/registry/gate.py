"""The promotion decision, kept free of MLflow so it is easy to test: paired bootstrap of challenger vs
champion on the same held-out units.

Rules: with no champion the challenger is promoted when its metric passes the absolute threshold. With a
champion it must also beat it: point difference >= ``min_delta`` and bootstrap probability of being better
>= ``min_prob_better`` (pairs resampled jointly, so the comparison uses the same slides/genes).

DE models (evidence kind ``de``: held-out predictions per patient and gene) follow a rule a user can read:
the absolute threshold is the number of genes predicted significantly better than random (``de_gene_test``,
Benjamini–Hochberg at ``de_fdr``, as evaluate_de reports: ``pooled``, each gene's pooled held-out Pearson r
against ``de_n_permutations`` shuffles of its predictions across patients; ``cv_null``, against the model's
cross-validation re-run on shuffled targets, attached to the version with its evidence; ``folds``, the
per-fold Wilcoxon). Against a champion
the challenger must have at least as many significant genes and a higher median held-out Pearson r over the
genes that either model predicts better than random (most panel genes carry no signal, and a median over
them only measures noise), with patients resampled jointly for both models (same patients, same genes) in
the paired bootstrap. With ``de_overall_p`` a version must also beat its own shuffled-target CV null over all
genes (mean held-out r, ``de_stats.overall_null_test``): the per-gene tests are liberal at ~13 pairs, and a
handful of chance discoveries should not promote a model that recovers nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from histcode.errors import HistcodeError
from histcode.registry.names import DE, ENCODER, MIL


@dataclass(frozen=True)
class GateConfig:
    """``promote`` section of params.yaml."""

    thresholds: dict[str, float] = field(
        default_factory=lambda: {ENCODER: 0.8, MIL: 0.8, DE: 3}
    )
    min_delta: float = 0.0
    min_prob_better: float = 0.9
    min_overlap: float = 0.8
    bootstrap: int = 1000
    seed: int = 1337
    de_fdr: float = 0.05
    de_n_random: int = 100
    de_gene_test: Literal["pooled", "cv_null", "folds"] = "pooled"
    de_n_permutations: int = 10_000
    de_overall_p: float | None = None  # also beat the version's own CV null over all genes at this p (None: off)

    def __post_init__(self) -> None:
        if self.de_gene_test not in ("pooled", "cv_null", "folds"):
            raise ValueError(f"promote.de_gene_test: 'pooled', 'cv_null' or 'folds', got {self.de_gene_test!r}")
        if self.de_overall_p is not None and not 0 < self.de_overall_p <= 1:
            raise ValueError(f"promote.de_overall_p: a p-value in (0, 1] or null, got {self.de_overall_p!r}")


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger_metric: float
    champion_metric: float | None = None
    delta: float | None = None
    delta_ci: tuple[float, float] | None = None
    prob_better: float | None = None
    n: int = 0
    details: dict[str, float] = field(default_factory=dict)

    def as_tags(self) -> dict[str, str]:
        tags = {"gate.decision": "promoted" if self.promote else "refused", "gate.reason": self.reason,
                "gate.challenger_metric": f"{self.challenger_metric:.6g}", "gate.n": str(self.n)}
        if self.champion_metric is not None:
            tags["gate.champion_metric"] = f"{self.champion_metric:.6g}"
        if self.delta is not None and self.delta_ci is not None:
            tags["gate.delta"] = f"{self.delta:.6g}"
            tags["gate.delta_ci"] = f"[{self.delta_ci[0]:.4g}, {self.delta_ci[1]:.4g}]"
        if self.prob_better is not None:
            tags["gate.prob_better"] = f"{self.prob_better:.4g}"
        for key, value in self.details.items():
            tags[f"gate.{key}"] = f"{value:.6g}"
        return tags


def _de_frames(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """``de`` evidence → truth and prediction (patients × genes, both sorted) and fold per patient."""
    truth = df.pivot(index="patient_id", columns="gene", values="y_true").sort_index().sort_index(axis=1)
    pred = df.pivot(index="patient_id", columns="gene", values="y_pred").loc[truth.index, truth.columns]
    return truth, pred, df.groupby("patient_id")["fold"].first().loc[truth.index]


def _de_matrices(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_de_frames` as arrays: truth (P, G), prediction (P, G), fold (P,)."""
    truth, pred, fold = _de_frames(df)
    return truth.to_numpy(np.float64), pred.to_numpy(np.float64), fold.to_numpy()


def de_median_r(truth: np.ndarray, pred: np.ndarray) -> float:
    """Median over genes (columns) of the held-out Pearson r (patients pooled over folds)."""
    from histcode.metrics.de_stats import columnwise_pearson

    r = columnwise_pearson(truth, pred)
    return float(np.nanmedian(r)) if np.isfinite(r).any() else float("nan")


class MissingNull(HistcodeError, ValueError):
    """``de_gene_test: cv_null`` or ``de_overall_p`` and a version without its CV null."""


def _missing_null(who: str, or_else: str) -> MissingNull:
    return MissingNull(f"the {who} has no CV null (registered before it was attached, or trained with "
                       f"de.null_shuffles: 0); retrain it with `dvc repro train_de` or {or_else}")


def de_overall(df: pd.DataFrame, null: pd.DataFrame | None, who: str = "challenger") -> dict[str, float]:
    """The version's mean held-out r over all genes against its own shuffled-target CV null
    (``de_stats.overall_null_test``); ``MissingNull`` without one."""
    from histcode.metrics.de_stats import columnwise_pearson, null_matrix, overall_null_test

    if null is None or not len(null):
        raise _missing_null(who, "set promote.de_overall_p: null")
    truth, pred, _ = _de_frames(df)
    r = columnwise_pearson(truth.to_numpy(np.float64), pred.to_numpy(np.float64))
    return overall_null_test(r, null_matrix(null, [str(g) for g in truth.columns]))


def de_significant(df: pd.DataFrame, cfg: GateConfig, null: pd.DataFrame | None = None, *,
                   who: str = "challenger") -> list[str]:
    """Genes whose held-out correlations beat the random baseline after BH (``evaluate_de``'s test), sorted.
    ``null``: the version's CV null, needed by ``de_gene_test: cv_null`` (``MissingNull`` without it)."""
    from histcode.metrics.de_stats import compare_to_random

    if cfg.de_gene_test == "cv_null" and (null is None or not len(null)):
        raise _missing_null(who, "set promote.de_gene_test: pooled")
    long = df.rename(columns={"y_true": "y_true_log10fc", "y_pred": "y_pred_log10fc"})
    table, _, _ = compare_to_random(long, n_random=cfg.de_n_random, seed=cfg.seed, alternative="greater",
                                    fdr=cfg.de_fdr, gene_test=cfg.de_gene_test,
                                    n_permutations=cfg.de_n_permutations,
                                    cv_null=null if cfg.de_gene_test == "cv_null" else None)
    return sorted(table.loc[table["significant"], "gene"].astype(str))


def metric(df: pd.DataFrame, kind: str) -> float:
    """ROC-AUC for ``binary`` evidence, mean score for ``per_unit`` evidence, median held-out r for ``de``."""
    if kind == "de":
        return de_median_r(*_de_matrices(df)[:2])
    if kind == "binary":
        return float(roc_auc_score(df["label"].to_numpy(), df["prob"].to_numpy()))
    return float(df["score"].mean())


def paired_bootstrap(a: pd.DataFrame, b: pd.DataFrame, kind: str, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap distribution of metric(b) - metric(a) over jointly resampled ids (a, b aligned by row)."""
    rng = np.random.default_rng(seed)
    n = len(a)
    deltas = []
    if kind == "binary":
        y = a["label"].to_numpy()
        pa, pb = a["prob"].to_numpy(), b["prob"].to_numpy()
    else:
        sa, sb = a["score"].to_numpy(), b["score"].to_numpy()
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if kind == "binary":
            if y[idx].min() == y[idx].max():
                continue
            deltas.append(roc_auc_score(y[idx], pb[idx]) - roc_auc_score(y[idx], pa[idx]))
        else:
            deltas.append(float(sb[idx].mean() - sa[idx].mean()))
    return np.asarray(deltas, dtype=float)


def decide(
    challenger: pd.DataFrame,
    kind: str,
    threshold: float,
    cfg: GateConfig,
    champion: pd.DataFrame | None = None,
    *,
    challenger_null: pd.DataFrame | None = None,
    champion_null: pd.DataFrame | None = None,
) -> Decision:
    """Decide whether ``challenger`` replaces ``champion`` (evidence tables of the same kind; the CV nulls of
    ``de`` evidence for ``de_gene_test: cv_null``)."""
    if kind == "de":
        return decide_de(challenger, threshold, cfg, champion, challenger_null=challenger_null,
                         champion_null=champion_null)
    chal_metric = metric(challenger, kind)
    if chal_metric < threshold:
        return Decision(False, f"challenger metric {chal_metric:.4f} below absolute threshold {threshold:.4f}",
                        chal_metric, n=len(challenger))
    if champion is None:
        return Decision(True, f"no champion; challenger passes threshold {threshold:.4f}", chal_metric,
                        n=len(challenger))
    merged = champion.merge(challenger, on="id", suffixes=("_a", "_b"))
    overlap = len(merged) / max(len(challenger), len(champion))
    if overlap < cfg.min_overlap:
        return Decision(False, f"only {overlap:.0%} of held-out ids shared with the champion: not comparable",
                        chal_metric, n=len(merged))
    cols = [c for c in challenger.columns if c != "id"]
    a = merged[["id"] + [f"{c}_a" for c in cols]].rename(columns=lambda c: c.removesuffix("_a"))
    b = merged[["id"] + [f"{c}_b" for c in cols]].rename(columns=lambda c: c.removesuffix("_b"))
    if kind == "binary" and not (a["label"].to_numpy() == b["label"].to_numpy()).all():
        return Decision(False, "champion and challenger evidence disagree on labels", chal_metric, n=len(merged))
    champ_metric, chal_metric = metric(a, kind), metric(b, kind)
    delta = chal_metric - champ_metric
    boot = paired_bootstrap(a, b, kind, cfg.bootstrap, cfg.seed)
    ci = (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))) if len(boot) else (delta, delta)
    prob_better = float((boot > 0).mean()) if len(boot) else float(delta > 0)
    better = delta >= cfg.min_delta and delta > 0 and prob_better >= cfg.min_prob_better
    reason = (
        f"challenger {chal_metric:.4f} vs champion {champ_metric:.4f}: delta {delta:+.4f} "
        f"(95% CI {ci[0]:+.4f}..{ci[1]:+.4f}), P(better) {prob_better:.2f}; "
        + ("better by the required margin" if better else
           f"needs delta >= {cfg.min_delta} and P(better) >= {cfg.min_prob_better}")
    )
    return Decision(better, reason, chal_metric, champ_metric, delta, ci, prob_better, len(merged))


def de_bootstrap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], n_boot: int,
                 seed: int) -> np.ndarray:
    """Bootstrap of median r(b) - median r(a) with the same resampled patients (rows) for both models."""
    rng = np.random.default_rng(seed)
    n = a[0].shape[0]
    out = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if np.unique(idx).size < 3:
            continue
        out.append(de_median_r(b[0][idx], b[1][idx]) - de_median_r(a[0][idx], a[1][idx]))
    boot = np.asarray(out, dtype=float)
    return boot[np.isfinite(boot)]


def decide_de(challenger: pd.DataFrame, threshold: float, cfg: GateConfig,
              champion: pd.DataFrame | None = None, *, challenger_null: pd.DataFrame | None = None,
              champion_null: pd.DataFrame | None = None) -> Decision:
    """The DE rule (module docstring): genes better than random after BH, then a paired patient bootstrap of
    the median r over the genes either model predicts better than random. A version the ``cv_null`` test
    cannot judge (no CV null) is refused with the reason, never judged by another test."""
    try:
        return _decide_de(challenger, threshold, cfg, champion, challenger_null, champion_null)
    except MissingNull as exc:
        return Decision(False, str(exc), metric(challenger, "de"), n=int(challenger["patient_id"].nunique()))


def _decide_de(challenger: pd.DataFrame, threshold: float, cfg: GateConfig, champion: pd.DataFrame | None,
               challenger_null: pd.DataFrame | None, champion_null: pd.DataFrame | None) -> Decision:
    sig = de_significant(challenger, cfg, challenger_null)
    all_r = metric(challenger, "de")
    n_patients = int(challenger["patient_id"].nunique())
    details = {"n_genes_significant_bh": float(len(sig)), "median_r_all_genes": all_r,
               "n_genes": float(challenger["gene"].nunique()), "n_patients": float(n_patients)}
    named = ""
    if sig:
        truth, pred, _ = _de_matrices(challenger[challenger["gene"].isin(sig)])
        shown = ", ".join(sig[:8]) + (f" and {len(sig) - 8} more" if len(sig) > 8 else "")
        named = f": {shown} (their median r {de_median_r(truth, pred):.3f})"
        details["median_r_significant_genes"] = de_median_r(truth, pred)
    head = (f"{len(sig)} genes better than random after BH (needs >= {threshold:g}){named}; median held-out r "
            f"over all {challenger['gene'].nunique()} genes {all_r:.3f}")
    if len(sig) < threshold:
        return Decision(False, f"{head}: below the absolute rule", all_r, n=n_patients, details=details)
    if cfg.de_overall_p is not None:
        overall = de_overall(challenger, challenger_null)
        details.update(overall)
        head += (f"; mean r over all genes {overall['cv_null_overall_mean_r']:.3f} vs its shuffled-target CV null "
                 f"{overall['cv_null_overall_null_mean_r']:.3f}: p {overall['cv_null_overall_p']:.3g}")
        if overall["cv_null_overall_p"] > cfg.de_overall_p:
            return Decision(False, f"{head} (needs <= {cfg.de_overall_p:g}): not better than its null over all "
                            "genes", all_r, n=n_patients, details=details)
    if champion is None:
        return Decision(True, f"no champion; {head}: passes", all_r, n=n_patients, details=details)
    shared = champion.merge(challenger[["id"]], on="id")
    overlap = len(shared) / max(len(challenger), len(champion))
    if overlap < cfg.min_overlap:
        return Decision(False, f"only {overlap:.0%} of (patient, gene) pairs shared with the champion: not "
                        "comparable", all_r, n=len(shared), details=details)
    ids = set(shared["id"])
    a = champion[champion["id"].isin(ids)]
    b = challenger[challenger["id"].isin(ids)]
    champ_sig = de_significant(a, cfg, champion_null, who="champion")
    chal_sig = de_significant(b, cfg, challenger_null)
    genes = sorted(set(champ_sig) | set(chal_sig))
    ma, mb = _de_matrices(a[a["gene"].isin(genes)]), _de_matrices(b[b["gene"].isin(genes)])
    if not np.allclose(ma[0], mb[0], equal_nan=True):
        return Decision(False, "champion and challenger evidence disagree on the true fold changes", all_r,
                        n=len(shared), details=details)
    champ_r, chal_r = de_median_r(*ma[:2]), de_median_r(*mb[:2])
    delta = chal_r - champ_r
    boot = de_bootstrap(ma[:2], mb[:2], cfg.bootstrap, cfg.seed)
    ci = (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))) if len(boot) else (delta, delta)
    prob_better = float((boot > 0).mean()) if len(boot) else float(delta > 0)
    details.update(n_genes_significant_bh=float(len(chal_sig)), champion_n_genes_significant_bh=float(len(champ_sig)),
                   n_genes_compared=float(len(genes)))
    better = (len(chal_sig) >= len(champ_sig) and delta >= cfg.min_delta and delta > 0
              and prob_better >= cfg.min_prob_better)
    reason = (f"challenger {len(chal_sig)} genes better than random vs champion {len(champ_sig)}; median r over "
              f"the {len(genes)} genes either predicts better than random {chal_r:.4f} vs {champ_r:.4f} on the "
              f"same {ma[0].shape[0]} patients: delta {delta:+.4f} (95% CI {ci[0]:+.4f}..{ci[1]:+.4f}), "
              f"P(better) {prob_better:.2f}; "
              + ("better by the required margin" if better else
                 f"needs >= the champion's significant genes, delta >= {cfg.min_delta} and P(better) >= "
                 f"{cfg.min_prob_better}"))
    return Decision(better, reason, chal_r, champ_r, delta, ci, prob_better, int(ma[0].shape[0]), details)
