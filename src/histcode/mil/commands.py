"""CLI: ``histcode train-mil`` (the train_mil stage)."""

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
