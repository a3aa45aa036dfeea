"""``histcode pretrain``: AdCo / SimCLR self-supervised pretraining (light module: imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain(
        params: Path = typer.Option(Path("params.yaml"), "--params", help="params file"),
        resume: bool = typer.Option(False, "--resume", help="require resuming data/checkpoints/pretrain/<method>.pt "
                                    "(error if its config differs)"),
        restart: bool = typer.Option(False, "--restart", help="ignore the checkpoint and start at epoch 1"),
        method: str | None = typer.Option(None, "--method", help="adco | simclr (overrides pretrain.method)"),
        out: Path | None = typer.Option(None, "--out", help="encoder directory (default data/models/encoder)"),
        progress: bool | None = typer.Option(None, "--progress/--no-progress", help="default pretrain.progress"),
    ) -> None:
        """Train-cohort tiles → encoder in data/models/encoder, MLflow run, registered histcode-encoder.

        By default a run resumes its epoch checkpoint (a persisted DVC output) when it belongs to the same
        config. Many GPUs/nodes: ``torchrun --nproc_per_node N pipelines/pretrain.py``; the SimCLR baseline:
        ``--method simclr --out data/models/encoder_simclr``."""
        from histcode.console import summary_line
        from histcode.ssl.stage import run_pretrain

        mode: bool | str = False if restart else (True if resume else "auto")
        result = run_pretrain(params, resume=mode, method=method, out_dir=out, progress=progress)
        if result.metrics:  # rank 0 (the others return no metrics)
            typer.echo(f"{summary_line('pretrain', result.metrics, 'pretrain')} → {result.out_dir} "
                       f"(registered version {result.model_version})")
