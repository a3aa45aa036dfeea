"""External validation: apply a trained MIL classifier to every slide of another cohort (e.g. CPTAC).

Used by ``make eval-cptac`` with the promoted model (``load_mil("models:/histcode-mil@champion")``).
Slides without features or that fail are listed in ``metrics["failures"]`` and left out of the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from histcode.io.manifest import LABELLED_COLUMNS, read_manifest
from histcode.metrics.classification import classification_metrics
from histcode.mil.bags import feature_paths
from histcode.mil.cv import PRED_COLUMNS
from histcode.mil.inference import predict_slides
from histcode.mil.model import MilClassifier


def evaluate_cohort(
    features_dir: Path,
    manifest: Path | pd.DataFrame,
    model: MilClassifier,
    *,
    n_boot: int,
    seed: int,
    chunk_tiles: int = 8192,
    progress: bool = True,
    attention_dir: Path | None = None,
    attention_attrs: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions for every slide (``fold`` -1, ``split`` "external") and metrics with bootstrap CIs; with
    ``attention_dir`` each slide's attention file too (heatmaps of external slides), replacing an earlier run's."""
    df = read_manifest(manifest, columns=LABELLED_COLUMNS, labelled=True)
    paths, failures = feature_paths(features_dir, list(df["slide_id"]))
    if attention_dir is not None:  # a slide that fails now must not keep the attention of an earlier model
        for old in Path(attention_dir).glob("*.h5"):
            old.unlink()
    probs, failed = predict_slides(model, paths, chunk_tiles=chunk_tiles, progress=progress,
                                   attention_dir=attention_dir, attrs=attention_attrs)
    failures.update(failed)
    pooling = getattr(model.pooling, "name", "unknown")
    preds = df.merge(probs[["slide_id", "prob_tumor"]], on="slide_id", how="inner")
    preds = preds.assign(fold=-1, split="external", pooling=pooling)[PRED_COLUMNS]
    metrics: dict[str, Any] = {}
    if len(preds):
        metrics.update(
            classification_metrics(
                preds["label"].to_numpy(), preds["prob_tumor"].to_numpy(), n_boot=n_boot, seed=seed
            )
        )
    metrics["n_failed"] = float(len(failures))
    metrics["failures"] = [{"slide_id": k, "reason": v} for k, v in sorted(failures.items())]
    return preds.sort_values("slide_id").reset_index(drop=True), metrics
