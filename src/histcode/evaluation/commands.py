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

    @app.command("evaluate-external")
    def evaluate_external_cmd(
        cohort: str = typer.Option(..., help="external cohort name from params base.cohorts"),
        alias: str = typer.Option("champion", help="registry alias of histcode-encoder and histcode-mil"),
        params: Path = typer.Option(Path("params.yaml")),
        progress: bool = typer.Option(True, help="progress bars"),
    ) -> None:
        """Promoted encoder + MIL on an external cohort, tiling/extracting as needed (make eval-cptac)."""
        from histcode.evaluation.champion_external import evaluate_champions
        from histcode.registry.models import RegistryError

        try:
            m = evaluate_champions(params, cohort, alias=alias, progress=progress)
        except RegistryError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

        def ci(k: str) -> str:
            return f"{m[k]:.3f} [{m[k + '_ci_low']:.3f}, {m[k + '_ci_high']:.3f}]" if k in m else "n/a"

        typer.echo(f"{cohort}: {int(m.get('n', 0))} slides, AUC {ci('auc')}, accuracy {ci('accuracy')}, "
                   f"balanced accuracy {ci('balanced_accuracy')}; encoder v{int(m['encoder_version'])}, "
                   f"MIL v{int(m['mil_version'])}; metrics in reports/metrics/eval_{cohort}.json")
