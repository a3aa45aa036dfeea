"""A cross-validated Optuna objective: one trial = one config evaluated fold by fold, pruned early.

Folds may be trained in parallel (``submit_fold``: all of a trial's folds are submitted at once to worker
processes); their outcomes are still reported in fold order, so pruning and every number are the same as
fold by fold, and a pruned trial's folds that have not started are cancelled.

After each fold the running objective (over the folds done so far) is reported to Optuna at step = the
fold's position; the study's MedianPruner then stops a trial that is already worse than the median of
earlier trials at that step. Every trial is a nested MLflow run (params = the drawn values, metrics per
fold at step = fold id, the running and final objective) tagged with its Optuna study, number and state:
``COMPLETE``, ``PRUNED`` (run status KILLED) or ``FAIL`` (run status FAILED, reason in the ``error`` tag).
A trial that draws a finished trial's values again (TPE does, in a small categorical space) reuses its value
instead of training the same folds twice (tag ``optuna.repeat_of``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from histcode import tracking
from histcode.tuning.config import ParamSpec
from histcode.tuning.space import suggest

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


@dataclass
class FoldOutcome:
    """One fold's held-out numbers (``metrics``) and, where a score pools folds, its ``payload``
    (e.g. the fold's held-out predictions)."""

    fold: int
    metrics: dict[str, float]
    payload: Any = None


FoldEvaluator = Callable[[Any, int], FoldOutcome]  # (trial config, fold id) -> outcome


class FoldHandle(Protocol):
    """A fold submitted to run elsewhere (a future)."""

    def result(self) -> FoldOutcome: ...

    def cancel(self) -> bool: ...


FoldSubmitter = Callable[[Any, int], FoldHandle]  # (trial config, fold id) -> handle, started at once
Score = Callable[[list[FoldOutcome]], float]  # outcomes so far -> objective value (NaN = undefined yet)
# (tuned outcomes, current outcomes) on the same held-out folds -> objective(tuned) - objective(current) in each
# of n resamples of the held-out patients (the same patients for both; NaN where a resample is undefined)
PairedBootstrap = Callable[[list[FoldOutcome], list[FoldOutcome]], "np.ndarray"]


@dataclass
class CvObjective:
    """Callable for ``study.optimize``: ``make_config(values)`` builds the trial config from the drawn
    ``values``; ``evaluate_fold`` trains/tests one fold; ``score`` turns the outcomes into the objective."""

    space: Mapping[str, ParamSpec]
    target: type
    make_config: Callable[[dict[str, Any]], Any]
    evaluate_fold: FoldEvaluator
    score: Score
    folds: list[int]
    objective: str
    stage: str
    cohort: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    extras: Callable[[list[FoldOutcome]], dict[str, float]] | None = None
    experiment: str = "tune"
    submit_fold: FoldSubmitter | None = None  # parallel folds; None: evaluate_fold in this process

    def __call__(self, trial: Any) -> float:
        import optuna

        values = suggest(trial, self.space, self.target, where=f"tune ({self.stage})")
        tags = {
            **self.tags,
            "optuna.study": trial.study.study_name,
            "optuna.trial": str(trial.number),
            "objective": self.objective,
        }
        twin = next((t for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                     if t.params == values and t.value is not None), None)
        if twin is not None:  # a sampler may draw a finished trial's values again (a small categorical space)
            return self._repeat(trial, twin, values, tags)
        cfg = self.make_config(values)
        outcomes: list[FoldOutcome] = []
        pruned_at: int | None = None
        with tracking.start_run(
            self.experiment,
            run_name=f"trial-{trial.number:03d}",
            stage=self.stage,
            params=values,
            cohort=self.cohort,
            nested=True,
            tags=tags,
        ) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            handles = [self.submit_fold(cfg, f) for f in self.folds] if self.submit_fold else None
            try:
                for step, fold in enumerate(self.folds):
                    out = handles[step].result() if handles else self.evaluate_fold(cfg, fold)
                    outcomes.append(out)
                    tracking.log_metrics({f"fold.{k}": v for k, v in out.metrics.items()}, step=fold)
                    running = self.score(outcomes)
                    if math.isfinite(running):
                        trial.report(running, step)
                        tracking.log_metrics({f"running_{self.objective}": running}, step=step)
                    if trial.should_prune():
                        pruned_at = step
                        break
                if pruned_at is None:
                    value = self.score(outcomes)
                    if not math.isfinite(value):
                        raise ValueError(
                            f"trial {trial.number}: objective {self.objective} is undefined over folds "
                            f"{self.folds} (e.g. a test fold holds one class only); use more folds per trial "
                            f"(tune.*.folds) or regenerate the splits"
                        )
                    extra = self.extras(outcomes) if self.extras else {}
                    tracking.log_metrics({self.objective: value, **extra})
                    tracking.set_tags({"optuna.state": "COMPLETE"})
            except Exception as exc:
                msg = f"{type(exc).__name__}: {exc}"
                trial.set_user_attr("error", msg[:1000])
                tracking.set_tags({"optuna.state": "FAIL", "error": msg[:5000]})
                log.warning("tune: trial %d failed: %s", trial.number, msg)
                raise
            finally:
                for h in handles or []:
                    h.cancel()  # a pruned or failed trial's folds that have not started
            if pruned_at is not None:
                tracking.set_tags({"optuna.state": "PRUNED", "optuna.pruned_at_fold": str(self.folds[pruned_at])})
        if pruned_at is not None:
            tracking.terminate_run(run.info.run_id, status="KILLED")
            raise optuna.TrialPruned(
                f"trial {trial.number}: running {self.objective} {running:.4f} after fold {self.folds[pruned_at]} "
                f"is worse than the median of earlier trials"
            )
        return value

    def _repeat(self, trial: Any, twin: Any, values: dict[str, Any], tags: dict[str, str]) -> float:
        """A trial whose values a finished trial already scored: folds and seeds depend on the values alone, so
        training again would give the same number; its run records the twin instead."""
        with tracking.start_run(self.experiment, run_name=f"trial-{trial.number:03d}", stage=self.stage,
                                params=values, cohort=self.cohort, nested=True,
                                tags={**tags, "optuna.state": "COMPLETE", "optuna.repeat_of": str(twin.number)}) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            trial.set_user_attr("repeat_of", twin.number)
            tracking.log_metrics({self.objective: float(twin.value)})
        log.info("tune: trial %d drew trial %d's values again; its %s %.4f is reused", trial.number, twin.number,
                 self.objective, twin.value)
        return float(twin.value)
