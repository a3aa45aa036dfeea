"""Summaries of a CV run: the flat metrics dict (DVC metrics JSON = MLflow metrics) and ROC/PR tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from histcode.metrics.classification import classification_metrics, paired_delta, roc_pr_curves

FOLD_KEYS = ("accuracy", "balanced_accuracy", "auc")
SUMMARY_KEYS = ("accuracy", "balanced_accuracy", "auc", "average_precision")


def pooled_metrics(preds: pd.DataFrame, *, n_boot: int, seed: int) -> dict[str, dict[str, float]]:
    """Overall held-out metrics with CIs per pooling: {pooling: classification_metrics(...)}."""
    return {
        str(p): classification_metrics(
            df["label"].to_numpy(), df["prob_tumor"].to_numpy(), n_boot=n_boot, seed=seed
        )
        for p, df in preds.groupby("pooling", sort=False)
    }


def flat_metrics(
    overall: dict[str, dict[str, float]], folds: dict[str, list[dict[str, float]]]
) -> dict[str, float]:
    """``<pooling>.<metric>[_ci_low|_ci_high]`` overall and ``<pooling>.fold<k>.<metric>...`` per fold."""
    out: dict[str, float] = {}
    for pooling, m in overall.items():
        for key in SUMMARY_KEYS:
            for suffix in ("", "_ci_low", "_ci_high"):
                if key + suffix in m:
                    out[f"{pooling}.{key}{suffix}"] = m[key + suffix]
        out[f"{pooling}.n"] = m["n"]
        for k, fm in enumerate(folds.get(pooling, [])):
            for key in FOLD_KEYS:
                for suffix in ("", "_ci_low", "_ci_high"):
                    if key + suffix in fm:
                        out[f"{pooling}.fold{k}.{key}{suffix}"] = fm[key + suffix]
            out[f"{pooling}.fold{k}.best_epoch"] = fm.get("best_epoch", float("nan"))
    return out


def comparisons(preds: pd.DataFrame, primary: str, *, n_boot: int, seed: int) -> dict[str, float]:
    """Paired AUC / accuracy differences of the primary pooling vs each baseline on the same slides."""
    out: dict[str, float] = {}
    wide = preds.pivot_table(index="slide_id", columns="pooling", values="prob_tumor")
    labels = preds.drop_duplicates("slide_id").set_index("slide_id")["label"].reindex(wide.index)
    if primary not in wide:
        return out
    for other in wide.columns:
        if other == primary:
            continue
        ok = wide[[primary, other]].notna().all(axis=1)
        for metric in ("auc", "accuracy"):
            d = paired_delta(
                labels[ok].to_numpy(),
                wide.loc[ok, primary].to_numpy(),
                wide.loc[ok, other].to_numpy(),
                metric=metric,
                n_boot=n_boot,
                seed=seed,
            )
            for k, v in d.items():
                out[f"delta_{metric}.{primary}_vs_{other}.{k}"] = v
    return out


def curves(preds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC (fpr, tpr, pooling) and PR (recall, precision, pooling) of the held-out predictions."""
    rocs, prs = [], []
    for pooling, df in preds.groupby("pooling", sort=False):
        if df["label"].nunique() < 2:
            continue
        roc, pr = roc_pr_curves(df["label"].to_numpy(), df["prob_tumor"].to_numpy(), label=str(pooling))
        rocs.append(roc)
        prs.append(pr)
    if not rocs:
        return pd.DataFrame(columns=["fpr", "tpr", "pooling"]), pd.DataFrame(
            columns=["recall", "precision", "pooling"]
        )
    return pd.concat(rocs, ignore_index=True), pd.concat(prs, ignore_index=True)


def summary_for_plot(overall: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    return {
        p: {k: v for k, v in m.items() if k.startswith(("auc", "average_precision"))}
        for p, m in overall.items()
    }


TABLE_METRICS = ("accuracy", "auc", "balanced_accuracy")
DECLARED_KEYS = ("auc", "accuracy", "balanced_accuracy")


def table1(
    preds: pd.DataFrame, primary: str, *, n_boot: int, seed: int, times: dict[str, float] | None = None
) -> pd.DataFrame:
    """The paper's Table 1: one row per method (held-out slides of the CV), accuracy / AUC / balanced
    accuracy with 95 % bootstrap CIs and the paired ΔAUC of ``primary`` (HistCode) minus the method, CI'd on
    the same resamples. Rows in the order the methods appear in ``preds``."""
    overall = pooled_metrics(preds, n_boot=n_boot, seed=seed)
    deltas = comparisons(preds, primary, n_boot=n_boot, seed=seed)
    rows = []
    for method, m in overall.items():
        row: dict[str, Any] = {"method": method, "n": int(m["n"])}
        for key in TABLE_METRICS:
            for suffix in ("", "_ci_low", "_ci_high"):
                row[key + suffix] = m.get(key + suffix, float("nan"))
        for k in ("delta", "ci_low", "ci_high"):
            row[f"delta_auc_{k}" if k != "delta" else "delta_auc"] = (
                0.0 if method == primary else deltas.get(f"delta_auc.{primary}_vs_{method}.{k}", float("nan"))
            )
        row["time_s"] = (times or {}).get(method, float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def declared_metrics(table: pd.DataFrame, primary: str, suffix: str = "") -> dict[str, float]:
    """The few keys per method that go to the declared DVC metrics: ``<method><suffix>.auc|accuracy|
    balanced_accuracy`` and ``.delta_auc`` (HistCode minus the method) for the others."""
    out: dict[str, float] = {}
    for row in table.to_dict("records"):
        name = f"{row['method']}{suffix}"
        for key in DECLARED_KEYS:
            out[f"{name}.{key}"] = float(row[key])
        if row["method"] != primary:
            out[f"{name}.delta_auc"] = float(row["delta_auc"])
    return out


def _ci(row: dict[str, Any], key: str) -> str:
    v, lo, hi = row[key], row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if v != v:
        return "n/a"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo == lo and hi == hi else f"{v:.3f}"


def headline(rows: list[dict[str, Any]], primary: str) -> str:
    """Table 1 in one sentence: HistCode's held-out AUC and where each baseline stands by its paired ΔAUC interval
    (ahead, behind, or within the noise of these slides); what a collapsed run description must show first."""
    by = {r["method"]: r for r in rows}
    me = by[primary]
    out = f"**HistCode ({primary})**: AUC {_ci(me, 'auc')}, balanced accuracy {_ci(me, 'balanced_accuracy')} " \
          f"on {int(me['n'])} held-out slides."

    def delta(r: dict[str, Any]) -> str:
        return f"{r['method']} ({r['delta_auc']:+.3f} [{r['delta_auc_ci_low']:+.3f}, {r['delta_auc_ci_high']:+.3f}])"

    others = [r for r in rows if r["method"] != primary and r["delta_auc_ci_low"] == r["delta_auc_ci_low"]]
    ahead = [delta(r) for r in others if r["delta_auc_ci_low"] > 0]
    behind = [delta(r) for r in others if r["delta_auc_ci_high"] < 0]
    tied = [r["method"] for r in others if r["delta_auc_ci_low"] <= 0 <= r["delta_auc_ci_high"]]
    parts = ([f"ahead of {', '.join(ahead)}"] if ahead else []) + ([f"behind {', '.join(behind)}"] if behind else [])
    if tied:
        parts.append(f"not distinguishable from {', '.join(tied)} (ΔAUC interval spans 0)")
    return out + (f" Paired ΔAUC, 95 % CI: {'; '.join(parts)}." if parts else "")


def table_markdown(table: pd.DataFrame, primary: str, *, title: str, note: str = "") -> str:
    """A Markdown rendering of ``table1`` (HistCode = ``primary`` first)."""
    lines = [
        f"### {title}",
        "",
        "| method | accuracy [95% CI] | AUC [95% CI] | balanced accuracy [95% CI] | ΔAUC vs HistCode [95% CI] "
        "| train time (s) |",
        "|---|---|---|---|---|---|",
    ]
    rows = sorted(table.to_dict("records"), key=lambda r: r["method"] != primary)
    for row in rows:
        name = f"**{row['method']}** (HistCode)" if row["method"] == primary else row["method"]
        delta = (
            "—"
            if row["method"] == primary
            else f"{row['delta_auc']:+.3f} [{row['delta_auc_ci_low']:+.3f}, {row['delta_auc_ci_high']:+.3f}]"
        )
        t = f"{row['time_s']:.0f}" if row["time_s"] == row["time_s"] else "n/a"
        lines.append(
            f"| {name} | {_ci(row, 'accuracy')} | {_ci(row, 'auc')} | {_ci(row, 'balanced_accuracy')} | {delta} | {t} |"
        )
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"
