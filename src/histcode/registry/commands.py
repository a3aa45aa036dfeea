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
        candidate: str = typer.Option(None, help="First move @challenger to the versions under this alias, e.g. "
                                      "exp-<name>: what a `dvc exp run --temp`/`--queue` registers."),
    ) -> None:
        """Promote each model's @challenger to @champion when held-out evidence says it is better."""
        from histcode.config import section
        from histcode.registry.gate import GateConfig
        from histcode.registry.models import RegistryError
        from histcode.registry.names import MODEL_NAMES
        from histcode.registry.promotion import nominate, promote, promote_all

        cfg = section(GateConfig, "promote", params)
        unknown = sorted(set(model or ()) - set(MODEL_NAMES))
        if unknown:
            typer.echo(f"error: unknown model {', '.join(unknown)}; registered models: {', '.join(MODEL_NAMES)}",
                       err=True)
            raise typer.Exit(2)
        if candidate:
            if dry_run:
                typer.echo("error: --candidate moves @challenger; drop --dry-run, or move it in the MLflow UI",
                           err=True)
                raise typer.Exit(2)
            try:
                nominate(candidate, tuple(model or MODEL_NAMES))
            except RegistryError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
        had_champion = {m: _has_champion(m) for m in (model or MODEL_NAMES)}
        if model:
            decisions = {m: promote(m, cfg, dry_run=dry_run) for m in model}
        else:
            decisions = promote_all(cfg, MODEL_NAMES)
        if not decisions:
            typer.echo("No model has a @challenger: run `dvc repro` first.")
            raise typer.Exit(1)
        for name, d in decisions.items():
            typer.echo(f"{name}: {verdict(d.promote, had_champion[name], dry_run)} — {d.reason}")


def _has_champion(name: str) -> bool:
    from histcode.registry.models import CHAMPION, RegistryError, get_version

    try:
        get_version(name, CHAMPION)
    except RegistryError:
        return False
    return True


def verdict(promoted: bool, had_champion: bool, dry_run: bool = False) -> str:
    """What the gate did, in words: a refused challenger only 'keeps' a champion when there is one."""
    if promoted:
        return "would promote to @champion (dry run)" if dry_run else "PROMOTED to @champion"
    return "kept @champion" if had_champion else "not promoted (no @champion yet)"
