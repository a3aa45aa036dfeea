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

        result = run_ingest(cohort, params)
        c = result.counts
        typer.echo(f"{cohort}: {c['slides']} slides ({c['slides_tumour']} tumour, {c['slides_normal']} normal), "
                   f"{c['failures']} excluded (see {result.out_dir / 'failures.csv'})")
