"""The promotion decision, kept free of MLflow so it is easy to test: paired bootstrap of challenger vs
champion on the same held-out units.

Rules: with no champion the challenger is promoted when its metric passes the absolute threshold. With a
champion it must also beat it: point difference >= ``min_delta`` and bootstrap probability of being better
>= ``min_prob_better`` (pairs resampled jointly, so the comparison uses the same slides/genes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class GateConfig:
    """``promote`` section of params.yaml."""

    thresholds: dict[str, float] = field(
        default_factory=lambda: {"histcode-encoder": 0.8, "histcode-mil": 0.8, "histcode-de": 0.05}
    )
    min_delta: float = 0.0
    min_prob_better: float = 0.9
    min_overlap: float = 0.8
    bootstrap: int = 1000
    seed: int = 1337


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
        return tags


def metric(df: pd.DataFrame, kind: str) -> float:
    """ROC-AUC for ``binary`` evidence, mean score for ``per_unit`` evidence."""
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
) -> Decision:
    """Decide whether ``challenger`` replaces ``champion`` (evidence tables of the same kind)."""
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
