"""``histcode evaluate-de`` (the evaluate_de stage), ``histcode evaluate-external`` and its deprecated alias
``eval-external`` (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer

from histcode.evaluation.result_lines import external_lines


def register(app: typer.Typer) -> None:
    @app.command("evaluate-de")
    def evaluate_de_cmd(
        params: Path = typer.Option(Path("params.yaml"), help="params file with base + evaluate_de sections"),
        cohort: str | None = typer.Option(None, help="cohort (default base.train_cohort)"),
    ) -> None:
        """Per-gene correlations vs random baseline (Wilcoxon + BH), plots, enrichment, synthetic truth."""
        from histcode.console import summary_line
        from histcode.evaluation.de_stage import run_evaluate_de

        typer.echo(summary_line("evaluate_de", run_evaluate_de(params, cohort=cohort).metrics, "de"))

    @app.command("evaluate-external")
    def evaluate_external_cmd(
        cohort: str | None = typer.Option(None, help="external cohort from params base.cohorts (default: the one "
                                          "with role: external)"),
        alias: str = typer.Option("champion", help="registry alias of histcode-encoder and histcode-mil"),
        model: str | None = typer.Option(None, help="instead of the @alias pair: this MIL model (models:/ URI or "
                                         "model dir) on the cohort's existing features"),
        params: Path = typer.Option(Path("params.yaml")),
        progress: bool = typer.Option(True, help="progress bars"),
        calibration: Path | None = typer.Option(None, help="CSV slide_id and/or patient_id[,label]: slides to "
                                                "fit recalibration on (their patients leave the test slides)"),
        recalibration: str = typer.Option("platt", help="platt | isotonic"),
        keep_training_patients: bool = typer.Option(
            False, "--keep-training-patients", help="also score slides of patients in the training cohort (other "
            "slides of the same patients, e.g. frozen → FFPE); the training slides themselves stay out"),
    ) -> None:
        """Promoted encoder + MIL on an external cohort, tiling/extracting as needed (make eval-cptac). Slides the
        model trained on (same slide, file or patient) are left out of the metrics and listed."""
        from histcode.config import base
        from histcode.evaluation.champion_external import evaluate_external

        cohort = cohort or base(params).external_cohort()
        m = evaluate_external(params, cohort, alias=alias, model=model, calibration=calibration,
                              recalibration=recalibration, progress=progress,
                              keep_training_patients=keep_training_patients)

        typer.echo("\n".join(external_lines(cohort, m)))

    @app.command("eval-external", hidden=True)  # deprecated alias: one job, one command (evaluate-external)
    def eval_external_cmd(
        cohort: str | None = typer.Option(None, help="external cohort from params base.cohorts (default: the one "
                                          "with role: external)"),
        model: str = typer.Option("models:/histcode-mil@champion", help="registry URI or model directory"),
        params: Path = typer.Option(Path("params.yaml")),
        calibration: Path | None = typer.Option(None, help="CSV slide_id/patient_id[,label] for recalibration"),
        recalibration: str = typer.Option("platt", help="platt | isotonic"),
    ) -> None:
        """Deprecated alias of ``histcode evaluate-external --model M`` (one workflow, one metrics file)."""
        from histcode.config import base
        from histcode.evaluation.champion_external import evaluate_external

        cohort = cohort or base(params).external_cohort()
        typer.echo("warning: `histcode eval-external` is deprecated and will be removed; use `histcode "
                   f"evaluate-external --cohort {cohort} --model {model}`.", err=True)
        m = evaluate_external(params, cohort, model=model, calibration=calibration, recalibration=recalibration)
        typer.echo(
            f"{cohort}: n={int(m.get('n', 0))} AUC {m.get('auc', float('nan')):.3f} "
            f"accuracy {m.get('accuracy', float('nan')):.3f} at threshold {m['threshold']:.3g} "
            f"ECE {m['ece']:.3f} failed {int(m['n_failed'])}; metrics in reports/metrics/eval_{cohort}.json"
        )
