"""``histcode de-targets``: RNA-seq → matched pairs, driver panel, fold-change targets (light module)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("de-targets")
    def de_targets(
        params: Path = typer.Option(Path("params.yaml"), "--params", help="params file"),
        cohort: str = typer.Option(None, "--cohort", help="cohort (default base.train_cohort)"),
    ) -> None:
        """data/manifests/<cohort>/rnaseq.csv → data/expression/<cohort>/ (pairs, panel, log10/log2 fc, labels)."""
        from histcode.cohort.tables import IngestError
        from histcode.cohort.validation import ValidationError
        from histcode.config import ConfigError
        from histcode.expression.build import TargetsError
        from histcode.expression.panel import PanelError
        from histcode.expression.readers import ExpressionFileError
        from histcode.expression.stage import run_de_targets

        try:
            result = run_de_targets(params, cohort=cohort)
        except (ValidationError, IngestError, ConfigError, TargetsError, PanelError, ExpressionFileError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from None
        m = result.metrics
        typer.echo(f"{m['pairs']} pairs, {m['target_genes']} genes ({m['panel_genes_missing']} panel genes missing), "
                   f"{m['excluded_patients']} patients excluded")
