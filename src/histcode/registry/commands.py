"""``histcode promote``: the registry's promotion gate from the command line."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("promote")
    def promote_cmd(
        model: list[str] = typer.Option(None, "--model", "-m", help="Registered model name(s); default all."),
        params: Path = typer.Option(Path("params.yaml"), help="params file with a `promote` section."),
        dry_run: bool = typer.Option(False, help="Decide and print, move no alias."),
    ) -> None:
        """Promote each model's @challenger to @champion when held-out evidence says it is better."""
        from histcode.config import section
        from histcode.registry.gate import GateConfig
        from histcode.registry.models import MODEL_NAMES
        from histcode.registry.promotion import promote, promote_all

        cfg = section(GateConfig, "promote", params)
        if model:
            decisions = {m: promote(m, cfg, dry_run=dry_run) for m in model}
        else:
            decisions = promote_all(cfg, MODEL_NAMES)
        if not decisions:
            typer.echo("No model has a @challenger: run `dvc repro` first.")
            raise typer.Exit(1)
        for name, d in decisions.items():
            verdict = "PROMOTED" if d.promote else "kept champion"
            typer.echo(f"{name}: {verdict} — {d.reason}")
