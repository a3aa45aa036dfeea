"""``histcode extract``: tile features per slide for one cohort (light module: imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("extract")
    def extract(
        cohort: str = typer.Option(..., "--cohort", help="cohort name under base.cohorts in params.yaml"),
        encoder: list[str] | None = typer.Option(None, "--encoder", help="encoder name (repeatable); default "
                                                 "extract.encoders"),
        params: Path = typer.Option(Path("params.yaml"), "--params", help="params file (sections base, extract)"),
        progress: bool | None = typer.Option(None, "--progress/--no-progress", help="default extract.progress"),
    ) -> None:
        """data/tiles/<cohort> → data/features/<cohort>/<encoder>/<slide_id>.h5 (+ failures.csv).

        Sharded over GPUs: ``torchrun --nproc_per_node N pipelines/extract.py --cohort NAME``; rerunning skips
        slides already extracted."""
        from histcode.console import summary_line
        from histcode.features.stage import run_extract

        metrics = run_extract(params, cohort=cohort, encoders=encoder or None, progress=progress)
        typer.echo(summary_line(f"extract {cohort}", metrics, "extract"))
