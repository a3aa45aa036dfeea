"""``histcode de-targets``: RNA-seq → matched pairs, driver panel, fold-change targets (light module)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("de-targets")
    def de_targets(
        params: Path = typer.Option(Path("params.yaml"), "--params", help="params file"),
        cohort: str = typer.Option(None, "--cohort", help="cohort (default base.train_cohort)"),
    ) -> None:
        """data/manifests/<cohort>/rnaseq.csv → data/expression/<cohort>/ (pairs, panel, log10/log2 fc, labels)."""
        from histcode.cohort.validation import validation_process

        with validation_process():  # great-expectations loads in another process while this one starts
            from histcode.console import summary_line
            from histcode.expression.stage import run_de_targets

            metrics = run_de_targets(params, cohort=cohort).metrics
        typer.echo(summary_line("de_targets", metrics, "de_targets"))
