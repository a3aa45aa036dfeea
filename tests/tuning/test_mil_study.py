"""The MIL study on the production path (real ``run_fold``): storage, nested MLflow runs, the objective
against a direct recomputation, the best-params file and determinism for a fixed seed."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from histcode.config import base, section
from histcode.mil.config import MilConfig
from histcode.mil.cv import run_fold
from histcode.tuning.mil_objective import TRIAL_DEFAULTS, load_mil_data
from histcode.tuning.space import overlay
from histcode.tuning.stage import run_tune_mil

from .conftest import use_project

SPACE = ("lr", "weight_decay", "dropout", "hidden", "attn_hidden")


@pytest.fixture(scope="module")
def study_runs(tmp_path_factory: pytest.TempPathFactory, fresh_mlflow):
    root = tmp_path_factory.mktemp("tune_mil")
    mp = pytest.MonkeyPatch()
    params = use_project(root, fresh_mlflow, mp)
    first = run_tune_mil("params.yaml")
    storage = f"sqlite:///{root / 'optuna/tune_mil.db'}"
    trials1 = [(t.state, t.params, t.value) for t in optuna.load_study(study_name="tune_mil", storage=storage).trials]
    best_text = first.best_path.read_text()
    second = run_tune_mil("params.yaml")  # resume: false → the study restarts from scratch
    trials2 = [(t.state, t.params, t.value) for t in optuna.load_study(study_name="tune_mil", storage=storage).trials]
    yield {"root": root, "params": params, "first": first, "second": second, "trials1": trials1,
           "trials2": trials2, "best_text": best_text}
    mp.undo()


def test_study_is_stored_in_sqlite_with_three_complete_trials(study_runs) -> None:
    trials = study_runs["trials1"]
    assert (study_runs["root"] / "optuna/tune_mil.db").is_file()
    assert len(trials) == 3 and all(state == optuna.trial.TrialState.COMPLETE for state, _, _ in trials)
    for _, p, value in trials:
        assert set(p) == set(SPACE) and 1e-4 <= p["lr"] <= 1e-2 and p["hidden"] in (8, 16)
        assert 0.0 <= value <= 1.0
    s = study_runs["first"].summary
    assert s.best_value == max(v for _, _, v in trials) and (s.n_complete, s.n_pruned, s.n_failed) == (3, 0, 0)


def test_every_trial_is_a_nested_mlflow_run_of_the_tune_parent(study_runs) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("histcode/tune")
    first = study_runs["first"]
    runs = client.search_runs([exp.experiment_id], max_results=100)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == first.parent_run_id]
    assert len(runs) == 2 * (1 + 3)  # two studies, each a parent + 3 trials
    assert len(children) == 3
    parent = client.get_run(first.parent_run_id)
    assert parent.data.tags["histcode.stage"] == "tune_mil" and parent.data.tags["cohort"] == "toy"
    assert parent.data.metrics["best_value"] == pytest.approx(first.summary.best_value)
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in children}
    for number, (_, p, value) in enumerate(study_runs["trials1"]):
        run = by_trial[number]
        assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "COMPLETE"
        assert {k: run.data.params[k] for k in SPACE} == {k: str(p[k]) for k in SPACE}
        assert run.data.metrics["auc"] == pytest.approx(value)
        history = client.get_metric_history(run.info.run_id, "fold.auc")
        assert sorted(m.step for m in history) == [0, 1]


def test_objective_is_the_mean_heldout_auc_of_the_first_folds(study_runs) -> None:
    """Recompute the best trial directly with ``run_fold``; each fold AUC checked against sklearn."""
    params, s = study_runs["params"], study_runs["first"].summary
    bcfg, mcfg = base(params), section(MilConfig, "mil", params)
    data = load_mil_data(params, bcfg, mcfg)
    cfg = overlay(mcfg, TRIAL_DEFAULTS, s.best_params)
    aucs = []
    for fold in (0, 1):
        res = run_fold(data.manifest, data.bags, data.splits, fold, cfg.pooling, cfg, in_dim=data.in_dim,
                       seed=bcfg.seed)
        ref = roc_auc_score(res.predictions["label"], res.predictions["prob_tumor"])
        assert res.metrics["auc"] == pytest.approx(ref, abs=1e-12)
        aucs.append(ref)
    assert s.best_value == pytest.approx(float(np.mean(aucs)), abs=1e-9)


def test_best_params_file_is_a_full_mil_section(study_runs) -> None:
    first, params = study_runs["first"], study_runs["params"]
    assert first.best_path == Path("reports/tune/mil_best.yaml")
    loaded = yaml.safe_load(study_runs["best_text"])
    assert list(loaded) == ["mil"]
    cfg = section(MilConfig, "mil", loaded)
    expected = overlay(section(MilConfig, "mil", params), first.summary.best_params)
    assert cfg == expected
    assert set(loaded["mil"]) == {f for f in MilConfig.__dataclass_fields__}
    # the printed command applies exactly the best values (floats survive YAML 1.1 parsing)
    assert f"#   {first.command}" in study_runs["best_text"]
    args = shlex.split(first.command)
    assert args[:3] == ["dvc", "exp", "run"] and args[3::2] == ["-S"] * len(SPACE)
    applied = {a.split("=")[0]: yaml.safe_load(a.split("=", 1)[1]) for a in args[4::2]}
    assert applied == {f"mil.{k}": v for k, v in first.summary.best_params.items()}
    metrics = json.loads(Path("reports/metrics/tune_mil.json").read_text())
    assert metrics["n_trials"] == 3 and metrics["objective"] == "auc"
    assert metrics["best_value"] == first.summary.best_value and metrics["best.lr"] == first.summary.best_params["lr"]


def test_same_seed_gives_the_same_trials_and_best_params(study_runs) -> None:
    first, second = study_runs["first"].summary, study_runs["second"].summary
    assert study_runs["trials2"] == study_runs["trials1"]
    assert second.best_params == first.best_params and second.best_value == first.best_value


def test_the_fold_the_search_never_scored_judges_the_tuned_settings(study_runs) -> None:
    """The best trial is the best of several on folds 0-1, so it flatters; fold 2, never scored by the search,
    scores the tuned and the current settings alike (trial budget), and the verdict says which holds up."""
    params, first = study_runs["params"], study_runs["first"]
    bcfg, mcfg = base(params), section(MilConfig, "mil", params)
    data = load_mil_data(params, bcfg, mcfg)
    fixed = yaml.safe_load(Path("params.yaml").read_text())["tune"]["mil"].get("fixed", {})
    pooling = {"pooling": mcfg.pooling}
    folds = [run_fold(data.manifest, data.bags, data.splits, 2, mcfg.pooling,
                      overlay(mcfg, TRIAL_DEFAULTS, pooling, fixed, values), in_dim=data.in_dim,
                      seed=bcfg.seed).metrics for values in (first.summary.best_params, {})]
    expected = [m["auc"] for m in folds]
    check = first.check
    assert check.folds == [2] and (check.tuned, check.current) == pytest.approx(expected, abs=1e-12)
    # the tuned settings hold up only when their gain's 95% interval over resampled patients lies above 0
    assert check.ci is not None and check.ci[0] <= expected[0] - expected[1] <= check.ci[1]
    assert check.holds == (check.ci[0] > 0)
    n_test = int(folds[0]["n_test"])  # the verdict says what it rests on
    test_patients = set(data.splits.query("fold == 2 and split == 'test'")["patient_id"])
    assert n_test == data.manifest["patient_id"].isin(test_patients).sum() > 0
    assert check.verdict.startswith(f"On folds [2] ({n_test} held-out slides), which the search never scored: "
                                    f"tuned auc {expected[0]:.4f} vs the current settings {expected[1]:.4f}: ")
    assert f"95% interval [{check.ci[0]:+.4f}, {check.ci[1]:+.4f}] over resampled held-out patients" in check.verdict
    metrics = json.loads(Path("reports/metrics/tune_mil.json").read_text())
    assert (metrics["heldout_folds"], metrics["heldout_tuned"], metrics["heldout_holds"]) == (
        1, check.tuned, int(check.holds))
    assert (metrics["heldout_gain_ci_low"], metrics["heldout_gain_ci_high"]) == check.ci
    assert f"# {check.verdict}" in study_runs["best_text"]
