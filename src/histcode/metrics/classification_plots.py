"""ROC and precision-recall curves of several poolings in one figure (the paper's Figure 2)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from histcode.atomic import save_figure


def plot_roc_pr(
    roc: pd.DataFrame,
    pr: pd.DataFrame,
    out_png: str | Path,
    *,
    summary: dict[str, dict[str, float]] | None = None,
    title: str = "",
) -> Path:
    """Two panels (ROC, PR), one line per value of the ``pooling`` column; ``summary[pooling]`` may hold
    ``auc``/``auc_ci_low``/``auc_ci_high`` and ``average_precision`` shown in the legends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roc = roc if "pooling" in roc else roc.assign(pooling="model")
    pr = pr if "pooling" in pr else pr.assign(pooling="model")
    summary = summary or {}
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(10, 4.6))
    for name, df in roc.groupby("pooling", sort=False):
        s = summary.get(str(name), {})
        lab = str(name)
        if "auc" in s:
            lab += f" AUC {s['auc']:.3f}"
            if "auc_ci_low" in s:
                lab += f" [{s['auc_ci_low']:.3f}, {s['auc_ci_high']:.3f}]"
        ax_roc.plot(df["fpr"], df["tpr"], drawstyle="steps-post", label=lab)
    ax_roc.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax_roc.set(
        xlabel="False positive rate", ylabel="True positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.02)
    )
    for name, df in pr.groupby("pooling", sort=False):
        s = summary.get(str(name), {})
        lab = str(name) + (f" AP {s['average_precision']:.3f}" if "average_precision" in s else "")
        ax_pr.plot(df["recall"], df["precision"], drawstyle="steps-pre", label=lab)
    ax_pr.set(xlabel="Recall", ylabel="Precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    for ax in (ax_roc, ax_pr):
        ax.legend(loc="lower right" if ax is ax_roc else "lower left", fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    return save_figure(fig, out_png, dpi=120)
