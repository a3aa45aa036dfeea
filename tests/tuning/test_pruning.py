"""Pruning and failure handling, with a test double for the per-fold evaluator (the study, sampler,
pruner, MLflow runs and best-params writing are the production ones)."""

from __future__ import annotations

import mlflow
import optuna
import pytest
import yaml

from histcode.config import section
from histcode.mil.config import MilConfig
from histcode.tuning.objective import FoldOutcome
from histcode.tuning.stage import run_tune_mil

from .conftest import use_project

AUC_BY_DROPOUT = {0.0: 0.9, 0.5: 0.2}  # 0.25 "diverges": the evaluator raises


def fake_fold(cfg: MilConfig, fold: int) -> FoldOutcome:
    if cfg.dropout not in AUC_BY_DROPOUT:
        raise ValueError(f"loss diverged (dropout {cfg.dropout})")
    auc = AUC_BY_DROPOUT[cfg.dropout] + 0.01 * fold
    return FoldOutcome(fold, {"auc": auc, "val_loss": 1.0 - auc})


@pytest.fixture(scope="module")
def pruned_study(tmp_path_factory: pytest.TempPathFactory, fresh_mlflow):
    root = tmp_path_factory.mktemp("tune_prune")
    mp = pytest.MonkeyPatch()
    params = use_project(root, fresh_mlflow, mp)
    params["tune"]["mil"] = {
        "n_trials": 8, "timeout_s": None, "folds": 3, "startup_trials": 3, "prune_startup_trials": 1,
        "prune_warmup_folds": 0,
        "space": {"dropout": {"choices": [0.0, 0.25, 0.5]}, "lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
    }
    result = run_tune_mil(params, evaluate_fold=fake_fold)
    study = optuna.load_study(study_name="tune_mil", storage=f"sqlite:///{root / 'optuna/tune_mil.db'}")
    yield result, study, params
    mp.undo()


def test_worse_trials_are_pruned_after_their_first_fold(pruned_study) -> None:
    result, study, _ = pruned_study
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned, "a trial clearly worse than the median of earlier ones must be pruned"
    assert all(t.params["dropout"] == 0.5 for t in pruned)
    assert all(list(t.intermediate_values) == [0] for t in pruned)  # stopped after fold 0
    assert all(t.params["dropout"] == 0.0 and len(t.intermediate_values) == 3 for t in complete[1:])
    assert result.summary.n_pruned == len(pruned) and result.summary.best_params["dropout"] == 0.0
    assert result.summary.best_value == pytest.approx(0.91)  # mean of 0.90, 0.91, 0.92


def test_a_failing_trial_is_recorded_and_the_study_goes_on(pruned_study) -> None:
    result, study, _ = pruned_study
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all(t.params["dropout"] == 0.25 for t in failed)
    assert all("loss diverged" in t.user_attrs["error"] for t in failed)
    assert result.summary.n_failed == len(failed) and result.summary.n_trials == 8


def test_mlflow_records_pruned_and_failed_trials(pruned_study) -> None:
    result, study, _ = pruned_study
    client = mlflow.MlflowClient()
    for t in study.trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        state = t.state.name
        assert run.data.tags["optuna.state"] == state
        assert run.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}[state]
        if state == "FAIL":
            assert "loss diverged" in run.data.tags["error"]
        if state == "PRUNED":
            assert run.data.tags["optuna.pruned_at_fold"] == "0" and "auc" not in run.data.metrics


def test_best_file_keeps_untuned_keys(pruned_study) -> None:
    result = pruned_study[0]
    cfg = section(MilConfig, "mil", yaml.safe_load(result.best_path.read_text()))
    assert cfg.dropout == 0.0 and cfg.lr == result.summary.best_params["lr"]
    assert (cfg.hidden, cfg.max_epochs, cfg.bootstrap) == (16, 6, 50)  # from params, not the trial defaults


class _Handle:
    """A fold submitted to a fake pool: evaluated when its result is asked for; records cancellation."""

    def __init__(self, cfg: MilConfig, fold: int, log: list[tuple[float, int, str]]) -> None:
        self.cfg, self.fold, self.log = cfg, fold, log

    def result(self) -> FoldOutcome:
        self.log.append((self.cfg.dropout, self.fold, "result"))
        return fake_fold(self.cfg, self.fold)

    def cancel(self) -> bool:
        self.log.append((self.cfg.dropout, self.fold, "cancel"))
        return True


def test_parallel_folds_give_the_same_study_and_cancel_a_pruned_trials_rest(
        pruned_study, tmp_path_factory: pytest.TempPathFactory, fresh_mlflow) -> None:
    """Folds submitted at once (``mil.workers``) are reported in fold order: the same trials, states and values
    as fold by fold; a pruned trial's later folds are cancelled, never waited for."""
    import histcode.tuning.mil_objective as mil_objective

    _, serial, params = pruned_study
    root = tmp_path_factory.mktemp("tune_prune_parallel")
    mp = pytest.MonkeyPatch()
    try:
        use_project(root, fresh_mlflow, mp)
        log: list[tuple[float, int, str]] = []
        mp.setattr(mil_objective, "mil_fold_submitter",
                   lambda data, runner, seed: lambda cfg, fold: _Handle(cfg, fold, log))
        run_tune_mil(params)
        study = optuna.load_study(study_name="tune_mil", storage=f"sqlite:///{root / 'optuna/tune_mil.db'}")
    finally:
        mp.undo()
    assert [(t.state, t.params, t.value, t.intermediate_values) for t in study.trials] == \
           [(t.state, t.params, t.value, t.intermediate_values) for t in serial.trials]
    pruned = {t.params["dropout"] for t in study.trials if t.state == optuna.trial.TrialState.PRUNED}
    assert pruned == {0.5}
    asked = [(d, f) for d, f, what in log if what == "result"]
    assert (0.5, 1) not in asked and (0.5, 2) not in asked  # never waited for
    assert (0.5, 1, "cancel") in log and (0.5, 2, "cancel") in log
