"""CLI: ``histcode tune mil`` (the tune_mil stage) and ``histcode tune de`` (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from histcode.tuning.stage import TuneResult

PARAMS = typer.Option(Path("params.yaml"), help="params file (sections base, tune and the tuned one).")
N_TRIALS = typer.Option(None, "--n-trials", help="override tune.<family>.n_trials")
TIMEOUT = typer.Option(None, "--timeout-s", help="override tune.<family>.timeout_s (seconds)")
RESUME = typer.Option(None, "--resume/--fresh", help="add trials to the stored study / start it afresh")


def _report(result: TuneResult) -> None:
    s = result.summary
    typer.echo(
        f"study {s.study}: best {s.objective} {s.best_value:.4f} (trial {s.best_trial}); "
        f"{s.n_complete} complete, {s.n_pruned} pruned, {s.n_failed} failed"
    )
    typer.echo(result.check.verdict)
    typer.echo(f"best params: {result.best_path}")
    typer.echo("apply with:")
    typer.echo(f"  {result.command}")


def register(app: typer.Typer) -> None:
    tune = typer.Typer(help="Optuna hyperparameter sweeps (sqlite storage in optuna/, trials as MLflow runs).",
                       no_args_is_help=True)

    @tune.command("mil")
    def tune_mil_cmd(
        params: Path = PARAMS,
        n_trials: int = N_TRIALS,
        timeout_s: float = TIMEOUT,
        resume: bool = RESUME,
    ) -> None:
        """Tune mil.lr/weight_decay/dropout/hidden/attn_hidden on train_mil's features and saved folds."""
        from histcode.tuning.stage import run_tune_mil

        _report(run_tune_mil(params, n_trials=n_trials, timeout_s=timeout_s, resume=resume))

    @tune.command("de")
    def tune_de_cmd(
        params: Path = PARAMS,
        cohort: str = typer.Option(None, help="cohort (default base.train_cohort)"),
        n_trials: int = N_TRIALS,
        timeout_s: float = TIMEOUT,
        resume: bool = RESUME,
    ) -> None:
        """Tune the registered DE model (tune.de.method, null = de.method) on train_de's folds: the de keys in
        tune.de.space that change it (summaries/*: PCA width, prototypes, centring; */heads: lr, weight_decay,
        epochs). The folds left out of tune.de.folds check the best trial against the current settings."""
        from histcode.tuning.stage import run_tune_de

        _report(run_tune_de(params, cohort=cohort, n_trials=n_trials, timeout_s=timeout_s, resume=resume))

    app.add_typer(tune, name="tune")
