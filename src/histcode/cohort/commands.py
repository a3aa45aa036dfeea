"""``histcode ingest``: build and validate a cohort's manifests (light module: imports happen inside)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        cohort: str = typer.Option(..., "--cohort", help="cohort name under base.cohorts in params.yaml"),
        params: Path = typer.Option(Path("params.yaml"), "--params", help="params file"),
    ) -> None:
        """Sample sheets / barcodes / CPTAC CSV → data/manifests/<cohort>/{slides,rnaseq,failures}.csv."""
        from histcode.cohort.stage import run_ingest
        from histcode.console import summary_line

        result = run_ingest(cohort, params)
        typer.echo(f"{summary_line(f'ingest {cohort}', result.counts, 'ingest')} (excluded: "
                   f"{result.out_dir / 'failures.csv'})")
