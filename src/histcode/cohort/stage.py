"""The ``ingest`` stage: params → ``ingest_cohort`` → MLflow run + DVC metrics (used by CLI and pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from histcode.cohort.config import IngestConfig
from histcode.cohort.ingest import REPORT_JSON, IngestResult, ingest_cohort
from histcode.config import DEFAULT_PARAMS, to_dict
from histcode.preflight import require_items
from histcode.prologue import open_stage


def run_ingest(cohort: str, params: str | Path | dict[str, Any] = DEFAULT_PARAMS) -> IngestResult:
    """Ingest ``cohort`` as configured in ``params``; log experiment ``ingest`` and its metrics JSON."""
    from histcode import tracking

    stage = open_stage("ingest", params, IngestConfig)
    cfg, paths = stage.cfg, stage.paths
    cohort_cfg = stage.base.cohort(cohort)
    inputs = [p for p in (cohort_cfg.slide_sheet, cohort_cfg.rna_sheet) if p is not None] or [cohort_cfg.slide_dir]
    with stage.run("ingest", run_name=f"ingest-{cohort}", metrics=f"ingest/{cohort}", cohort=cohort,
                   params={"ingest": to_dict(cfg), "cohort": to_dict(cohort_cfg)}, inputs=inputs,
                   defer=True) as run:  # logged by a detached process: no mlflow import here
        try:
            result = ingest_cohort(cohort, cohort_cfg, cfg, out_dir=paths.manifests(cohort))
        finally:
            report = paths.manifests(cohort) / REPORT_JSON
            if report.exists():
                tracking.log_artifact(report, artifact_path="validation")
        for name in ("slides.csv", "failures.csv"):
            tracking.log_artifact(paths.manifests(cohort) / name, artifact_path="manifests")
        run.metrics = {**result.counts, **result.confounds}
    # nothing downstream can run on no slides: say why here instead of "AUC nan" four stages later
    require_items(len(result.slides), what=f"usable slide in cohort {cohort!r} "
                  f"({int(result.counts['input_slides'])} input row(s), {len(result.failures)} excluded: reasons in "
                  f"{paths.manifests(cohort) / 'failures.csv'})", where=cohort_cfg.slide_sheet or cohort_cfg.slide_dir,
                  fix=f"check base.cohorts.{cohort} (sheet, slide_dir) and the files")
    return result
