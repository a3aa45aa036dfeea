"""CLI: ``histcode train-mil`` (the train_mil stage) and the deprecated ``histcode eval-external`` alias."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("train-mil")
    def train_mil_cmd(
        params: Path = typer.Option(Path("params.yaml"), help="params file (sections base, mil)."),
    ) -> None:
        """Patient-level CV of gated-attention/mean/max MIL, final models, registry, attention export."""
        from histcode.console import summary_line
        from histcode.mil.stage import run_train_mil

        metrics = run_train_mil(params)
        typer.echo(f"{summary_line('train_mil (held-out AUC)', metrics, 'mil')}; primary "
                   f"{metrics['primary_pooling']}, Table 1 with CIs in reports/mil/table1.md")

    @app.command("eval-external", hidden=True)  # deprecated alias: one job, one command (evaluate-external)
    def eval_external_cmd(
        cohort: str = typer.Option(..., help="external cohort name from params base.cohorts"),
        model: str = typer.Option("models:/histcode-mil@champion", help="registry URI or model directory"),
        params: Path = typer.Option(Path("params.yaml")),
        calibration: Path | None = typer.Option(None, help="CSV slide_id/patient_id[,label] for recalibration"),
        recalibration: str = typer.Option("platt", help="platt | isotonic"),
    ) -> None:
        """Deprecated alias of ``histcode evaluate-external --model M`` (one workflow, one metrics file)."""
        typer.echo("warning: `histcode eval-external` is deprecated and will be removed; use `histcode "
                   f"evaluate-external --cohort {cohort} --model {model}`.", err=True)
        from histcode.evaluation.champion_external import evaluate_external

        m = evaluate_external(params, cohort, model=model, calibration=calibration, recalibration=recalibration)
        typer.echo(
            f"{cohort}: n={int(m.get('n', 0))} AUC {m.get('auc', float('nan')):.3f} "
            f"accuracy {m.get('accuracy', float('nan')):.3f} at threshold {m['threshold']:.3g} "
            f"ECE {m['ece']:.3f} failed {int(m['n_failed'])}; metrics in reports/metrics/eval_{cohort}.json"
        )
