"""``histcode synth``: generate the synthetic cohorts (heavy imports happen inside the command)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth(
        params: Path = typer.Option(
            Path("params.yaml"), "--params", help="params file with a `synth` section"
        ),
        out_dir: Path | None = typer.Option(None, "--out", help="output folder (default: synth.out_dir)"),
        workers: int | None = typer.Option(None, "--workers", help="override synth.workers"),
        tiny: bool = typer.Option(False, "--tiny", help="the few-second test cohort instead of params"),
        progress: bool | None = typer.Option(None, "--progress/--no-progress", help="default synth.progress"),
    ) -> None:
        """Write the TCGA-like and CPTAC-like synthetic cohorts and their ground truth."""
        import dataclasses

        from histcode.synth import SynthConfig, generate

        cfg = SynthConfig.tiny() if tiny else SynthConfig.from_params(params)
        changes: dict[str, object] = {} if progress is None else {"progress": progress}
        if workers is not None:
            changes["workers"] = workers
        cfg = dataclasses.replace(cfg, **changes)
        generate(cfg, out_dir or cfg.out_dir)
