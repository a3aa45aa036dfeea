"""The final MIL model of one pooling: refit on every patient, save, export attention, register.

The primary pooling is registered as ``histcode-mil`` (alias ``challenger``) with its encoder's registered
version as a tag, and its CV held-out predictions attached as the promotion gate's evidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histcode import tracking
from histcode.mil import report
from histcode.mil.bags import BagCache, read_bag
from histcode.mil.config import MilConfig
from histcode.mil.cv import train_final
from histcode.mil.decision import TAG, decision_threshold, write_threshold
from histcode.mil.inference import predict_slides
from histcode.mil.model import MilClassifier, save_mil
from histcode.paths import Paths
from histcode.registry.names import ENCODER, MIL

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What every fold and final model of a train_mil run shares."""

    manifest: pd.DataFrame
    bags: BagCache
    cfg: MilConfig
    paths: Paths
    cohort: str
    in_dim: int
    seed: int
    tags: dict[str, str]
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def feature_files(self) -> dict[str, Path]:
        return self.bags.paths


def final_model(
    ctx: StageContext,
    pooling: str,
    *,
    epochs: int,
    held_out: pd.DataFrame,
    params: dict[str, Any] | None = None,
    cv_metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Train, save to data/models/mil/<pooling>/, write attention for every slide; register if primary.

    Its MLflow run ``<pooling>/<encoder>/final`` carries the method's params (plus ``epochs``) and, as
    plain metrics, the CV held-out metrics that estimate how this model does (``cv_metrics``)."""
    out_dir = ctx.paths.models("mil") / pooling
    with tracking.start_run(
        "mil",
        run_name=f"{pooling}/{ctx.tags.get('encoder', '')}/final",
        stage="train_mil",
        nested=True,
        cohort=ctx.cohort,
        params={**(params or {}), "epochs": epochs},
        tags={**ctx.tags, "pooling": pooling, "fold": "final"},
    ):
        tracking.log_metrics({**(cv_metrics or {}), "epochs": float(epochs)})
        decision = decision_threshold(held_out, ctx.cfg)
        meta = {"pooling": pooling, "cohort": ctx.cohort, **file_meta(ctx.tags), TAG: decision["threshold"]}
        model = train_final(
            ctx.manifest,
            ctx.bags,
            pooling,
            ctx.cfg,
            in_dim=ctx.in_dim,
            seed=ctx.seed,
            epochs=epochs,
            meta=meta,
        )
        _, failed = predict_slides(
            model,
            ctx.feature_files,
            chunk_tiles=ctx.cfg.chunk_tiles,
            attention_dir=ctx.paths.attention(ctx.cohort, pooling),
            attrs={"pooling": pooling, "encoder": ctx.tags["encoder"]},
            progress=ctx.cfg.progress,
        )
        ctx.failures.update({sid: f"attention ({pooling}): {why}" for sid, why in failed.items()})
        info: dict[str, Any] = {"dir": str(out_dir), "epochs": epochs, TAG: decision["threshold"]}
        tracking.log_params({TAG: decision["threshold"], "decision_threshold_method": decision["method"]})
        tracking.log_artifact(write_threshold(out_dir, decision))
        if pooling == ctx.cfg.pooling:
            log.info("train_mil: %s registered as %s version %s", pooling, MIL, register(ctx, model, held_out))
        save_mil(model, out_dir)
    return info


# Lineage that names registry versions (``histcode-encoder/2``) is true of this MLflow store's history, not of
# the files' content: a fresh store numbers from 1 and every rerun registers a new version. It stays in MLflow
# (run and version tags) and out of the DVC-tracked files, so the same inputs and params give the same bytes and
# a rerun that changes nothing leaves the later stages up to date.
STORE_KEYS = ("encoder_version",)


def file_meta(tags: dict[str, str]) -> dict[str, str]:
    """``tags`` without the registry-history keys (``STORE_KEYS``): what a DVC-tracked file may record."""
    return {k: v for k, v in tags.items() if k not in STORE_KEYS}


def register(ctx: StageContext, model: MilClassifier, held_out: pd.DataFrame) -> str:
    """Log + register the model in the active run; attach held-out evidence; return the version."""
    from histcode.registry import log_and_register
    from histcode.registry.evidence import attach_evidence, has_evidence

    pooling = model.pooling.name
    example = read_bag(next(iter(ctx.feature_files.values())))[0][:16].astype(np.float32)
    cv = report.pooled_metrics(held_out, n_boot=0, seed=ctx.seed)[pooling]
    mv = log_and_register(
        model,
        MIL,
        input_example=example,
        metrics={f"cv_{k}": cv[k] for k in report.SUMMARY_KEYS if cv[k] == cv[k]},
        tags={**ctx.tags, "pooling": pooling, "cohort": ctx.cohort, TAG: f"{model.meta[TAG]:.6g}"},
    )
    evidence = held_out.rename(columns={"slide_id": "id", "prob_tumor": "prob"})[["id", "label", "prob"]]
    attach_evidence(MIL, mv.version, evidence, kind="binary")
    encoder_name, _, encoder_version = str(ctx.tags.get("encoder_version", "")).partition("/")
    if encoder_name == ENCODER and encoder_version.isdigit():
        # the encoder is judged by what it is for: held-out tumour diagnosis from its features, by the first
        # MIL model trained on them; later MIL experiments never rewrite that record
        if has_evidence(encoder_name, encoder_version):
            log.info("%s v%s keeps its evidence; MIL v%s does not replace it", encoder_name, encoder_version,
                     mv.version)
        else:
            attach_evidence(encoder_name, encoder_version, evidence, kind="binary",
                            source=f"{MIL}/{mv.version}")
    return str(mv.version)
