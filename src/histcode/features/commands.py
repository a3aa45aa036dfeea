"""``histcode extract``: tile features per slide for one cohort (light module: imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("extract")
    def extract(
        cohort: str = typer.Option(..., "--cohort", help="cohort name under base.cohorts in params.yaml"),
        encoder: list[str] | None = typer.Option(None, "--encoder", help="encoder name(s); default extract.encoders"),
        params: Path = typer.Option(Path("params.yaml"), "--params", help="params file"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """data/tiles/<cohort> → data/features/<cohort>/<encoder>/<slide_id>.h5 (+ failures.csv)."""
        from histcode.config import ConfigError
        from histcode.features.stage import run_extract

        try:
            metrics = run_extract(params, cohort=cohort, encoders=encoder or None, progress=progress)
        except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from None
        for key, value in sorted(metrics.items()):
            typer.echo(f"{key}: {value}")
