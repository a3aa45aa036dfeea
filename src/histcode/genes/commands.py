"""``histcode train-de``: the train_de stage from the command line (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("train-de")
    def train_de_cmd(
        params: Path = typer.Option(Path("params.yaml"), help="params file with base + de sections"),
        cohort: str | None = typer.Option(None, help="cohort (default base.train_cohort)"),
        no_register: bool = typer.Option(False, "--no-register", help="skip MLflow model registration"),
    ) -> None:
        """Train per-gene DE models (CV by patient) and per-gene attention MIL for the heatmap genes."""
        from histcode.console import summary_line
        from histcode.genes.stage import run_train_de

        typer.echo(summary_line("train_de", run_train_de(params, cohort=cohort, register=not no_register).metrics))
