"""``tune_mil`` (DVC stage) and ``tune de``: a parent MLflow run in experiment ``tune``, one nested run per
trial, the best params written back as ``reports/tune/<family>_best.yaml`` and metrics to
``reports/metrics/tune_<family>.json``.

The best trial's value is the best of many on the folds it was chosen on, so it flatters the tuned settings
(measured on the demo: best trial 0.973 AUC; the same settings applied with ``dvc exp run`` gave clam_sb 0.943
against 0.950 before). When the study scores only some folds (``tune.<family>.folds``), the folds it never scored
judge the choice: the tuned and the current settings are trained and scored there alike, and the log, the best
file and the metrics say whether the tuned settings hold up (``heldout_*``) before anyone applies them.

The evaluator argument exists for tests that need a fast stand-in for a fold; the production path (the
default) trains real folds with ``histcode.mil.cv.run_fold`` / the DE heads.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from histcode import tracking
from histcode.config import ConfigError, ProjectConfig, section, to_dict
from histcode.cpus import torch_threads
from histcode.prologue import Stage, open_stage
from histcode.tuning.best import best_section, dvc_set_command, write_best
from histcode.tuning.config import DeTuneConfig, MilTuneConfig, TuneConfig
from histcode.tuning.objective import CvObjective, FoldEvaluator, FoldOutcome, FoldSubmitter, PairedBootstrap, Score
from histcode.tuning.space import overlay
from histcode.tuning.study import StudySummary, open_study, summarize

log = logging.getLogger(__name__)
CAUGHT = (ValueError, RuntimeError, FloatingPointError)  # a bad trial is recorded as FAIL; the study goes on


@dataclass(frozen=True)
class HeldoutCheck:
    """The tuned and the current settings scored alike on the folds the study never scored (none: no check)."""

    folds: list[int]
    tuned: float
    current: float
    holds: bool | None  # tuned shown better there (or at least as good, without an interval); None: no folds
    verdict: str
    ci: tuple[float, float] | None = None  # 95% interval of the improvement (tuned over current) in resamples

    def metrics(self) -> dict[str, Any]:
        if self.holds is None:
            return {"heldout_folds": 0}
        out = {"heldout_folds": len(self.folds), "heldout_tuned": self.tuned, "heldout_current": self.current,
               "heldout_holds": int(self.holds)}
        if self.ci is not None:
            out.update({"heldout_gain_ci_low": self.ci[0], "heldout_gain_ci_high": self.ci[1]})
        return out


@dataclass(frozen=True)
class TuneResult:
    summary: StudySummary
    check: HeldoutCheck
    best_path: Path
    metrics_path: Path
    command: str
    parent_run_id: str


S = TypeVar("S", MilTuneConfig, DeTuneConfig)


def _tune_config(params: dict[str, Any]) -> TuneConfig:
    return section(TuneConfig, "tune", params) if "tune" in params else TuneConfig()


def _with_overrides(settings: S, **overrides: Any) -> S:
    """Command-line overrides (n_trials, timeout_s, resume) of one study; None = keep params."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(settings, **given) if given else settings


def _run_study(
    stage: Stage,
    *,
    family: str,
    tcfg: TuneConfig,
    settings: MilTuneConfig | DeTuneConfig,
    current: Any,
    trial_layers: list[dict[str, Any]],
    evaluate_fold: FoldEvaluator,
    score: Score,
    folds: list[int],
    held_out: list[int],
    cohort: str,
    inputs: list[Path],
    extras: Callable[[list[FoldOutcome]], dict[str, float]] | None = None,
    tags: dict[str, str] | None = None,
    submit_fold: FoldSubmitter | None = None,
    applied: dict[str, Any] | None = None,
    bootstrap: PairedBootstrap | None = None,
) -> TuneResult:
    """One study; ``applied``: keys written with the best values (the DE method tuned when it is not the
    registered one, so applying the file registers what was tuned)."""
    seed, paths = stage.seed, stage.paths
    objective = settings.objective
    study = open_study(settings, tcfg.storage_dir, seed=seed, direction=settings.direction)

    def make_config(values: dict[str, Any]) -> Any:
        return overlay(current, *trial_layers, values, where=f"{family} (trial)")

    cv = CvObjective(
        space=settings.space,
        target=type(current),
        make_config=make_config,
        evaluate_fold=evaluate_fold,
        score=score,
        folds=folds,
        objective=objective,
        stage=stage.name,
        cohort=cohort,
        tags=dict(tags or {}),
        extras=extras,
        submit_fold=submit_fold,
    )
    with stage.run(
        "tune",
        run_name=f"{stage.name}/{cohort}",
        metrics=stage.name,
        cohort=cohort,
        inputs=inputs,
        params={f"tune.{family}": to_dict(settings), family: to_dict(current), "base.seed": seed},
        tags={**(tags or {}), "optuna.study": settings.study, "objective": objective},
    ) as parent:
        study.optimize(cv, n_trials=settings.n_trials, timeout=settings.timeout_s, catch=CAUGHT)
        summary = summarize(study, objective)
        check = heldout_check(make_config, evaluate_fold, score, summary, held_out, submit_fold,
                              unit="slides" if family == "mil" else "patients", bootstrap=bootstrap)
        chosen = {**summary.best_params, **(applied or {})}
        command = dvc_set_command(family, chosen)
        full = best_section(current, chosen, family)
        best_path = write_best(
            paths.tune_best(family),
            family,
            full,
            command,
            header=(
                f"Best {family} hyperparameters of Optuna study {summary.study} (written by `histcode tune "
                f"{family}`):\ntrial {summary.best_trial}, {summary.objective} = {summary.best_value:.4f} "
                f"({summary.direction}) over folds {folds}; {summary.n_complete} complete, "
                f"{summary.n_pruned} pruned, {summary.n_failed} failed\n{check.verdict}"
            ),
        )
        metrics_path = paths.metrics(stage.name)
        parent.metrics = {**summary.metrics(), **check.metrics()}
        tracking.set_tags({"best_trial": str(summary.best_trial), "best_run_id": str(summary.best_run_id),
                           "apply_command": command[:5000], "heldout_verdict": check.verdict[:5000]})
        tracking.set_description(f"Best trial {summary.best_trial}: {objective} {summary.best_value:.4f} over folds "
                                 f"{folds}.\n\n{check.verdict}.\n\nApply with:\n\n    {command}")
        tracking.log_artifact(best_path, artifact_path="tune")
    log.info("tune %s: best %s %.4f (trial %d) over folds %s. %s; apply with:\n  %s", family, objective,
             summary.best_value, summary.best_trial, folds, check.verdict, command)
    return TuneResult(summary, check, best_path, metrics_path, command, parent.run_id)


def heldout_check(make_config: Callable[[dict[str, Any]], Any], evaluate_fold: FoldEvaluator, score: Score,
                  summary: StudySummary, held_out: list[int],
                  submit_fold: FoldSubmitter | None = None, unit: str = "slides",
                  bootstrap: PairedBootstrap | None = None) -> HeldoutCheck:
    """Score the best trial's values and the current settings (same trial budget) on ``held_out`` folds, in the
    trials' worker processes when there are some (``submit_fold``). With a paired ``bootstrap`` the tuned settings
    hold up only when the 95% interval of their gain over resampled held-out patients lies above 0: a gain
    within the noise of a few held-out patients is not one (measured on the demo's DE study, README Optuna).
    The verdict says how many held-out ``unit`` (the folds' ``n_test``) it rests on."""
    objective = summary.objective
    if not held_out:
        return HeldoutCheck([], float("nan"), float("nan"), None, (
            f"Every fold was searched, so {objective} {summary.best_value:.4f} is the best of {summary.n_complete} "
            "trials on the folds it was chosen on and flatters the tuned settings; set the study's `folds` below "
            "the number of folds to keep some for a check"))
    configs = [make_config(summary.best_params), make_config({})]
    if submit_fold is not None:
        handles = [[submit_fold(cfg, f) for f in held_out] for cfg in configs]
        outcomes = [[h.result() for h in hs] for hs in handles]
    else:
        outcomes = [[evaluate_fold(cfg, f) for f in held_out] for cfg in configs]
    tuned, now = (score(o) for o in outcomes)
    sign = 1.0 if summary.direction == "maximize" else -1.0
    n_test = sum(int(o.metrics.get("n_test", 0)) for o in outcomes[0])  # what the verdict rests on
    size = f" ({n_test} held-out {unit})" if n_test else ""
    head = (f"On folds {held_out}{size}, which the search never scored: tuned {objective} {tuned:.4f} vs the "
            f"current settings {now:.4f}")
    gains = sign * bootstrap(*outcomes) if bootstrap is not None else np.array([])
    gains = gains[np.isfinite(gains)]
    if gains.size < 100:  # no interval (an objective the predictions do not give, or too few two-class resamples)
        holds = bool(sign * (tuned - now) >= 0)  # NaN on either side: False
        why = (f"no interval for objective {objective}" if bootstrap is None else
               f"no interval: {gains.size} of the resamples of these {unit} give the objective")
        tail = (f"the tuned settings hold up ({why})" if holds else
                "the tuned settings do not beat the current ones there: keep the current settings, or apply them "
                "knowing this")
        return HeldoutCheck(list(held_out), tuned, now, holds, f"{head}: {tail}")
    lo, hi = (float(v) for v in np.percentile(gains, [2.5, 97.5]))
    interval = f"gain {sign * (tuned - now):+.4f}, 95% interval [{lo:+.4f}, {hi:+.4f}] over resampled held-out patients"
    if lo > 0:
        tail = f"the tuned settings hold up ({interval})"
    elif hi < 0:
        tail = f"the tuned settings are worse there ({interval}): keep the current settings"
    else:
        tail = (f"the difference is within the noise of these patients ({interval}): keep the current settings; "
                "the tuned ones are not shown better")
    return HeldoutCheck(list(held_out), tuned, now, lo > 0, f"{head}: {tail}", (lo, hi))


def run_tune_mil(
    params_path: str | Path | dict[str, Any] = "params.yaml",
    *,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    resume: bool | None = None,
    evaluate_fold: FoldEvaluator | None = None,
) -> TuneResult:
    """Tune the ``mil`` section on train_mil's inputs and saved splits (see ``tune.mil`` in params)."""
    import torch

    from histcode.mil.config import MilConfig
    from histcode.mil.parallel import FoldRunner
    from histcode.tuning.mil_objective import (
        TRIAL_DEFAULTS,
        load_mil_data,
        mil_fold_evaluator,
        mil_fold_submitter,
        mil_paired_bootstrap,
        mil_score,
        pooled_metrics,
        trial_folds,
    )

    stage = open_stage("tune_mil", params_path, MilConfig, "mil", seed=True)
    params, bcfg, mcfg = stage.params, stage.base, stage.cfg
    tcfg = _tune_config(params)
    settings = _with_overrides(tcfg.mil, n_trials=n_trials, timeout_s=timeout_s, resume=resume)
    torch.set_num_threads(torch_threads(mcfg.threads, "tune mil"))
    data = load_mil_data(params, bcfg, mcfg)
    folds = trial_folds(data.n_folds, settings.folds)
    pooling = ProjectConfig.load(params).tune_mil_pooling
    if settings.objective == "val_loss" and not (data.splits["split"] == "val").any():
        raise ValueError(f"{stage.paths.splits(data.cohort)}: no validation patients, so objective "
                         "val_loss is undefined; set mil.val_frac > 0 and rerun train_mil, or use objective auc")
    # a trial's folds train at once in train_mil's worker processes (mil.workers; same numbers as one by one)
    workers = min(mcfg.workers, len(folds)) if evaluate_fold is None and len(folds) > 1 else 0
    with FoldRunner(workers, threads=max(1, mcfg.threads)) as runner:
        return _run_study(
            stage,
            family="mil",
            tcfg=tcfg,
            settings=settings,
            current=mcfg,
            trial_layers=[TRIAL_DEFAULTS, {"pooling": pooling}, settings.fixed],  # the drawn values come last
            evaluate_fold=evaluate_fold or mil_fold_evaluator(data, seed=bcfg.seed),
            score=mil_score(settings.objective),
            folds=folds,
            held_out=[f for f in range(data.n_folds) if f not in folds],
            cohort=data.cohort,
            inputs=data.inputs,
            extras=pooled_metrics,
            tags={"pooling": pooling, "encoder": data.encoder},
            submit_fold=mil_fold_submitter(data, runner, seed=bcfg.seed) if workers else None,
            bootstrap=mil_paired_bootstrap(settings.objective, seed=bcfg.seed),
        )


def run_tune_de(
    params_path: str | Path | dict[str, Any] = "params.yaml",
    *,
    cohort: str | None = None,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    resume: bool | None = None,
) -> TuneResult:
    """Tune DE method ``tune.de.method`` (null: ``de.method``, the registered model) on train_de's inputs and
    folds: the keys of ``tune.de.space`` that change it (summaries, heads or inner folds)."""
    import torch

    from histcode.genes.config import DEConfig, de_config
    from histcode.genes.methods import check_searchable
    from histcode.tuning.de_objective import (
        NULL_OBJECTIVES,
        de_fold_evaluator,
        de_paired_bootstrap,
        de_score,
        load_de_data,
    )
    from histcode.tuning.mil_objective import trial_folds

    stage = open_stage("tune_de", params_path, DEConfig, "de", seed=True)
    params, bcfg, dcfg = stage.params, stage.base, stage.cfg
    tcfg = _tune_config(params)
    settings = _with_overrides(tcfg.de, n_trials=n_trials, timeout_s=timeout_s, resume=resume)
    method = settings.method or dcfg.method
    try:
        check_searchable(method, list(settings.space), "tune.de.space")
        check_searchable(method, list(settings.fixed), "tune.de.fixed", must_change=False)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    torch.set_num_threads(torch_threads(dcfg.threads, "tune de"))
    data = load_de_data(bcfg, de_config(params), method, cohort)  # attention_model resolved; dcfg as written
    searched = trial_folds(len(data.fold_ids), settings.folds, "tune.de.folds")
    log.info("tune de: method %s (%s), searching %s", method,
             "de.method" if method == dcfg.method else f"not de.method {dcfg.method}", sorted(settings.space))
    return _run_study(
        stage,
        family="de",
        tcfg=tcfg,
        settings=settings,
        current=dcfg,
        trial_layers=[{"progress": False}, settings.fixed],
        evaluate_fold=de_fold_evaluator(data, seed=bcfg.seed,
                                        log2_threshold=ProjectConfig.load(params).de_log2_threshold,
                                        n_shuffles=settings.null_shuffles if settings.objective in NULL_OBJECTIVES
                                        else 0),
        score=de_score(settings.objective),
        folds=[data.fold_ids[i] for i in searched],
        held_out=[data.fold_ids[i] for i in range(len(data.fold_ids)) if i not in searched],
        cohort=data.cohort,
        inputs=data.inputs,
        tags={"method": method},
        applied={"method": method} if method != dcfg.method else None,
        bootstrap=de_paired_bootstrap(settings.objective, seed=bcfg.seed),
    )
