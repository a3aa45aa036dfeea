"""Optuna study plumbing: a seeded TPE sampler, a MedianPruner over folds, sqlite storage, a summary.

Storage is ``sqlite:///<tune.storage_dir>/<study>.db`` (git-ignored ``optuna/``), so a study can be
inspected with ``optuna-dashboard`` or resumed (``resume: true``). By default a run starts the study
afresh: with a fixed seed and no time limit the same trials (and best params) come out every time.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histcode.tuning.config import StudySettings

log = logging.getLogger(__name__)


def open_study(settings: StudySettings, storage_dir: Path, *, seed: int, direction: str) -> Any:
    """Create (or, with ``resume``, load) the study ``settings.study`` in ``<storage_dir>/<study>.db``."""
    import optuna

    storage_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{(storage_dir / f'{settings.study}.db').resolve()}"
    if not settings.resume:
        try:
            optuna.delete_study(study_name=settings.study, storage=url)
            log.info("tune: restarting study %s in %s (resume: false)", settings.study, url)
        except KeyError:
            pass
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.startup_trials)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=settings.prune_startup_trials, n_warmup_steps=settings.prune_warmup_folds
    )
    study = optuna.create_study(
        study_name=settings.study,
        storage=url,
        sampler=sampler,
        pruner=pruner,
        direction=direction,
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise ValueError(
            f"{url}: study {settings.study} optimises {study.direction.name.lower()} but the objective needs "
            f"{direction}; set resume: false or pick another study name"
        )
    return study


@dataclass(frozen=True)
class StudySummary:
    """The outcome of a study: best trial and the count of trials per state."""

    study: str
    objective: str
    direction: str
    best_value: float
    best_trial: int
    best_params: dict[str, Any]
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    best_run_id: str | None = None

    def metrics(self) -> dict[str, Any]:
        """The flat dict for ``reports/metrics/tune_*.json`` (best params as ``best.<key>``)."""
        out: dict[str, Any] = {
            "study": self.study,
            "objective": self.objective,
            "direction": self.direction,
            "best_value": self.best_value,
            "best_trial": self.best_trial,
            "n_trials": self.n_trials,
            "n_complete": self.n_complete,
            "n_pruned": self.n_pruned,
            "n_failed": self.n_failed,
        }
        out.update({f"best.{k}": v for k, v in self.best_params.items()})
        return out


def summarize(study: Any, objective: str) -> StudySummary:
    """Counts per state and the best complete trial; a clear error (with failure reasons) when none completed."""
    import optuna

    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == states.COMPLETE and t.value is not None and math.isfinite(t.value)]
    if not done:
        reasons = sorted({str(t.user_attrs.get("error", t.state.name)) for t in trials})
        raise RuntimeError(
            f"study {study.study_name}: no trial completed ({len(trials)} run); reasons: {reasons[:5]}. "
            "Raise n_trials/timeout_s, widen the space or check the inputs."
        )
    best = study.best_trial
    return StudySummary(
        study=study.study_name,
        objective=objective,
        direction=study.direction.name.lower(),
        best_value=float(best.value),
        best_trial=int(best.number),
        best_params=dict(best.params),
        n_trials=len(trials),
        n_complete=len(done),
        n_pruned=sum(t.state == states.PRUNED for t in trials),
        n_failed=sum(t.state == states.FAIL for t in trials),
        best_run_id=best.user_attrs.get("mlflow_run_id"),
    )
