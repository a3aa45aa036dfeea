"""``histcode evaluate-de``: the evaluate_de stage from the command line (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate-de")
    def evaluate_de_cmd(
        params: Path = typer.Option(Path("params.yaml"), help="params file with base + evaluate_de sections"),
        cohort: str | None = typer.Option(None, help="cohort (default base.train_cohort)"),
    ) -> None:
        """Per-gene correlations vs random baseline (Wilcoxon + BH), plots, enrichment, synthetic truth."""
        from histcode.evaluation.de_stage import run_evaluate_de

        m = run_evaluate_de(params, cohort=cohort).metrics
        typer.echo(f"DE evaluation: median Pearson {m['pearson_r_median']:.3f} vs random "
                   f"{m['random_pearson_median']:.3f} (Wilcoxon p={m['wilcoxon_p']:.2g}), "
                   f"{int(m['n_genes_significant_bh'])} genes significant after BH")
