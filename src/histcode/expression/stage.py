"""The ``de_targets`` stage: validated rnaseq.csv → DE targets, MLflow run ``expression``, DVC metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from histcode.atomic import write_csv
from histcode.config import DEFAULT_PARAMS, to_dict
from histcode.expression.build import OUTPUTS, DETargets, TargetsError, make_de_targets, write_de_targets
from histcode.expression.config import ExpressionConfig
from histcode.io.manifest import read_manifest
from histcode.prologue import open_stage


def load_rnaseq_manifest(path: Path, *, tcga: bool, report: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Read ``rnaseq.csv`` and validate it with the ingest suite before use (raises ``ValidationError``)."""
    from histcode.cohort.suites import rnaseq_manifest
    from histcode.cohort.tables import read_table
    from histcode.cohort.validation import check_table

    df = read_table(path, sep=",", what="RNA-seq manifest (run `histcode ingest` first)")
    check_table(df, rnaseq_manifest(check_files=True, tcga=tcga), source=path, report=[] if report is None else report)
    return df.reset_index(drop=True)


def run_de_targets(params: str | Path | dict[str, Any] = DEFAULT_PARAMS, *, cohort: str | None = None) -> DETargets:
    """Build and write the DE targets of ``cohort`` (default ``base.train_cohort``)."""
    from histcode import tracking

    stage = open_stage("de_targets", params, ExpressionConfig, "expression")
    cfg, paths = stage.cfg, stage.paths
    name = cohort or stage.base.train_cohort
    cohort_cfg = stage.base.cohort(name)
    manifest_path = paths.rnaseq_csv(name)
    out_dir = paths.expression(name)
    with stage.run("expression", run_name=f"de_targets-{name}", metrics="de_targets", cohort=name,
                   params={"expression": to_dict(cfg)}, inputs=[paths.manifests(name)],
                   defer=True) as run:  # logged by a detached process: no mlflow import here
        # validated first, in the run (a failure is tracked): by now its process has loaded great-expectations
        manifest = load_rnaseq_manifest(manifest_path, tcga=cohort_cfg.kind in ("gdc", "barcode"))
        try:
            slides_csv = paths.slides_csv(name)
            slide_patients = ([p for p in read_manifest(slides_csv, columns=("slide_id", "patient_id"))["patient_id"]
                               if p] if slides_csv.is_file() else [])
            result = make_de_targets(manifest, cfg, source=str(manifest_path), slide_patients=slide_patients)
        except TargetsError as exc:
            if exc.pairing is not None:
                write_csv(out_dir / OUTPUTS["excluded"], exc.pairing.excluded)
            raise
        written = write_de_targets(result, out_dir)
        for key in ("pairs", "excluded", "panel", "read_failures"):
            tracking.log_artifact(written[key], artifact_path="expression")
        tracking.log_dict(result.overlap, "expression/histcode_overlap.json")
        run.metrics = result.metrics
    return result
