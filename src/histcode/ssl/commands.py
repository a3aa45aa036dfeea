"""``histcode pretrain``: AdCo / SimCLR self-supervised pretraining (light module: imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain(
        params: Path = typer.Option(Path("params.yaml"), "--params", help="params file"),
        resume: bool = typer.Option(False, "--resume", help="continue from the last epoch checkpoint"),
        method: str | None = typer.Option(None, "--method", help="adco | simclr (overrides pretrain.method)"),
        out: Path | None = typer.Option(None, "--out", help="encoder directory (default data/models/encoder)"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Train-cohort tiles → encoder in data/models/encoder, MLflow run, registered histcode-encoder."""
        from histcode.config import ConfigError
        from histcode.ssl.stage import run_pretrain

        try:
            result = run_pretrain(params, resume=resume, method=method, out_dir=out, progress=progress)
        except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from None
        if result.metrics:
            typer.echo(f"encoder → {result.out_dir} (loss {result.metrics['final_loss']:.3f}, "
                       f"{result.metrics['tiles_per_s']:.0f} tiles/s, version {result.model_version})")
