"""The DE study tunes the DE model a user registers: its fold loop reproduces train_de's cross-validation of
that method exactly, the search space may only name settings that change it, and ``run_tune_de`` writes a
valid ``de:`` params file, checked on the folds it never searched, with one nested MLflow run per trial."""

from __future__ import annotations

import mlflow
import pytest
import yaml

from histcode.config import ConfigError, base, section
from histcode.genes.config import DEConfig
from histcode.genes.methods import Representations, cross_validate_method
from histcode.genes.metrics import per_gene_metrics, summarise
from histcode.genes.null import shuffled_cv_null
from histcode.genes.run import load_de_data as load_train_de_data
from histcode.genes.run import method_settings
from histcode.genes.train import cross_validate
from histcode.metrics.de_stats import columnwise_pearson, matrices, null_matrix, overall_null_test
from histcode.tuning.config import TuneConfig
from histcode.tuning.de_objective import de_fold_evaluator, de_score, load_de_data
from histcode.tuning.space import overlay
from histcode.tuning.stage import run_tune_de

from .conftest import GENES, HEADS_SPACE, use_project


@pytest.fixture(scope="module")
def de_project(tmp_path_factory: pytest.TempPathFactory, fresh_mlflow):
    root = tmp_path_factory.mktemp("tune_de")
    mp = pytest.MonkeyPatch()
    params = use_project(root, fresh_mlflow, mp)
    yield root, params
    mp.undo()


def _write_params(root, params: dict, **tune_de) -> None:
    doc = {**params, "tune": {**params["tune"], "de": {**params["tune"]["de"], **tune_de}}}
    (root / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def test_registered_method_fold_objective_matches_train_de(de_project) -> None:
    """A trial that changes the summaries scores exactly what train_de reports for the registered method with
    those settings, without re-reading a slide."""
    _, params = de_project
    bcfg, cfg = base(params), section(DEConfig, "de", params)
    assert cfg.method == "summaries/rrr"
    data = load_de_data(bcfg, cfg, cfg.method)
    assert data.genes == GENES and data.fold_ids == [0, 1, 2] and len(data.patient_ids) == 12
    trial = overlay(cfg, {"summary_pca_dim": 3, "n_prototypes": 2, "summary_center_slides": True})
    evaluate, score = de_fold_evaluator(data, seed=bcfg.seed, log2_threshold=1.5), de_score("pearson_r_mean")
    outcomes = [evaluate(trial, k) for k in data.fold_ids]
    ref = load_train_de_data(trial, bcfg)  # train_de's loader, reading the slides with the trial's settings
    reps = Representations(ref.inputs.patient_ids, ref.inputs.x, ref.summaries)
    preds, _ = cross_validate_method(trial.method, reps, ref.y_reg, ref.y_cls, ref.targets.genes, ref.folds,
                                     method_settings(trial, bcfg.seed, 1.5))
    expected = summarise(per_gene_metrics(preds.drop(columns="method")))["pearson_r_mean"]
    assert score(outcomes) == pytest.approx(expected, abs=1e-12)
    # the settings matter: the current ones score differently on the same folds
    assert score([evaluate(cfg, k) for k in data.fold_ids]) != pytest.approx(expected, abs=1e-6)


def test_paper_heads_fold_objective_matches_train_de_cross_validation(de_project) -> None:
    _, params = de_project
    bcfg, cfg = base(params), section(DEConfig, "de", params)
    data = load_de_data(bcfg, cfg, "paper/heads")
    cfg = overlay(cfg, {"lr": 0.02, "weight_decay": 1e-4, "epochs": 40})
    evaluate, score = de_fold_evaluator(data, seed=bcfg.seed, log2_threshold=1.5), de_score("pearson_r_mean")
    outcomes = [evaluate(cfg, k) for k in data.fold_ids]
    ref, _ = cross_validate(data.reps.paper, data.y_reg, data.y_cls, data.patient_ids, data.genes, data.folds,
                            lr=0.02, weight_decay=1e-4, epochs=40, seed=bcfg.seed, progress=False)
    expected = summarise(per_gene_metrics(ref))["pearson_r_mean"]
    assert score(outcomes) == pytest.approx(expected, abs=1e-12)
    # the planted signal gives a positive held-out correlation (8 training patients, 16 inputs: weak but
    # clearly above 0; recovery strength itself is tested in tests/genes)
    assert expected > 0.05


def test_run_tune_de_tunes_the_registered_method_and_checks_it_on_an_unsearched_fold(de_project) -> None:
    root, params = de_project
    _write_params(root, params)
    result = run_tune_de("params.yaml")
    s = result.summary
    assert (s.n_trials, s.n_complete) == (3, 3) and s.objective == "pearson_r_mean"
    assert (root / "optuna/tune_de.db").is_file()
    text = result.best_path.read_text()
    cfg = section(DEConfig, "de", yaml.safe_load(text))
    assert cfg == overlay(section(DEConfig, "de", params), s.best_params)
    assert set(s.best_params) == {"summary_pca_dim", "n_prototypes", "summary_center_slides"}
    assert cfg.method == "summaries/rrr" and cfg.lr == params["de"]["lr"]
    assert result.command.startswith("dvc exp run -S de.summary_pca_dim=") and "de.method" not in result.command
    # folds 0-1 searched, fold 2 judges the best trial against the current settings
    assert result.check.folds == [2] and result.check.holds is not None
    assert result.check.metrics()["heldout_folds"] == 1
    assert "On folds [2] (4 held-out patients), which the search never scored" in text
    client = mlflow.MlflowClient()
    children = client.search_runs(
        [client.get_experiment_by_name("histcode/tune").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    assert len(children) == 3 and all(r.data.tags["histcode.stage"] == "tune_de" for r in children)
    assert all(r.data.tags["method"] == "summaries/rrr" for r in children)
    best = next(r for r in children if r.data.tags["optuna.trial"] == str(s.best_trial))
    assert best.data.metrics["pearson_r_mean"] == pytest.approx(s.best_value)
    # the run page's description gives the verdict and the apply line in full (a tag value is cut after a few words)
    note = client.get_run(result.parent_run_id).data.tags["mlflow.note.content"]
    assert result.check.verdict in note and note.endswith(f"    {result.command}")


@pytest.mark.parametrize(("space", "message"), [
    (HEADS_SPACE, "['lr', 'weight_decay', 'epochs'] do not change DE method summaries/rrr; search "
                  "['summary_pca_dim', 'n_prototypes', 'summary_center_slides', 'summary_quantiles', 'inner_folds']"),
    ({"top_l": {"choices": [3, 5]}}, "['top_l'] fix which tiles DE method paper/heads reads from every slide"),
])
def test_a_space_that_cannot_change_the_tuned_method_is_refused(de_project, space, message) -> None:
    root, params = de_project
    _write_params(root, params, space=space, method="paper/heads" if "top_l" in space else None)
    with pytest.raises(ConfigError, match=f"^tune.de.space: {message.replace('[', '.').replace(']', '.')}"):
        run_tune_de("params.yaml")


def test_a_fixed_key_the_trials_would_ignore_is_refused(de_project) -> None:
    """The slides are read once with the de section's top_l, so a fixed top_l would change nothing."""
    root, params = de_project
    _write_params(root, params, space=HEADS_SPACE, method="paper/heads", fixed={"top_l": 3, "progress": False})
    with pytest.raises(ConfigError, match=r"^tune.de.fixed: \['top_l'\] fix which tiles DE method paper/heads"):
        run_tune_de("params.yaml")


def test_tuning_another_method_writes_it_into_the_apply_command(de_project) -> None:
    """Tuning the paper's heads beside a registered summaries model: applying the file registers the heads."""
    root, params = de_project
    _write_params(root, params, space=HEADS_SPACE, method="paper/heads", folds=None)
    result = run_tune_de("params.yaml", n_trials=2)
    assert "-S de.method=paper/heads" in result.command and "-S de.lr=" in result.command
    assert section(DEConfig, "de", yaml.safe_load(result.best_path.read_text())).method == "paper/heads"
    assert result.check.holds is None and "Every fold was searched" in result.best_path.read_text()


def test_cv_null_objective_is_evaluate_des_calibrated_test_of_the_trial(de_project) -> None:
    """cv_null_z over every fold = the overall test evaluate_de reports: the trial's pooled r against the same
    trial cross-validated on train_de's shuffled targets (same permutations)."""
    _, params = de_project
    bcfg, cfg = base(params), section(DEConfig, "de", params)
    data = load_de_data(bcfg, cfg, cfg.method)
    evaluate = de_fold_evaluator(data, seed=bcfg.seed, log2_threshold=1.5, n_shuffles=4)
    outcomes = [evaluate(cfg, k) for k in data.fold_ids]
    settings = method_settings(cfg, bcfg.seed, 1.5)
    preds, _ = cross_validate_method(cfg.method, data.reps, data.y_reg, data.y_cls, data.genes, data.folds, settings)
    null = shuffled_cv_null(cfg.method, data.reps, data.y_reg, data.y_cls, data.genes, data.folds, settings,
                            n_shuffles=4, seed=bcfg.seed)
    truth, guess, _ = matrices(preds.drop(columns="method"))
    observed = columnwise_pearson(truth.to_numpy(), guess.to_numpy())
    expected = overall_null_test(observed, null_matrix(null, list(truth.columns)))
    assert de_score("cv_null_z")(outcomes) == pytest.approx(expected["cv_null_overall_z"], abs=1e-9)
    assert de_score("cv_null_top_z")(outcomes) == pytest.approx(expected["cv_null_overall_top_z"], abs=1e-9)
    # the plain objectives read the unshuffled run only
    assert de_score("pearson_r_mean")(outcomes) == pytest.approx(float(observed.mean()), abs=1e-12)
    with pytest.raises(ConfigError, match=r"tune\.de\.null_shuffles: objective cv_null_z needs >= 2"):
        section(TuneConfig, "tune", {"tune": {"de": {"objective": "cv_null_z", "null_shuffles": 1}}})


def test_a_trial_that_draws_finished_values_again_reuses_their_value(de_project) -> None:
    """Two choices and four trials: some trials repeat a finished one; they score nothing again (same folds, same
    seeds, same number) and their runs say which trial they repeat."""
    import optuna

    root, params = de_project
    _write_params(root, params, space={"summary_center_slides": {"choices": [False, True]}}, n_trials=4,
                  startup_trials=4, prune_startup_trials=10)  # no pruning: every trial completes
    result = run_tune_de("params.yaml")
    trials = optuna.load_study(study_name="tune_de", storage=f"sqlite:///{root / 'optuna/tune_de.db'}").trials
    repeats = [t for t in trials if "repeat_of" in t.user_attrs]
    assert len(repeats) >= 2 and result.summary.n_complete == 4
    for t in repeats:
        twin = trials[t.user_attrs["repeat_of"]]
        assert twin.number < t.number and twin.params == t.params and twin.value == t.value
        assert "repeat_of" not in twin.user_attrs
    client = mlflow.MlflowClient()
    children = client.search_runs(
        [client.get_experiment_by_name("histcode/tune").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    tagged = {r.data.tags["optuna.trial"]: r.data.tags.get("optuna.repeat_of") for r in children}
    assert {int(k): int(v) for k, v in tagged.items() if v} == {t.number: t.user_attrs["repeat_of"] for t in repeats}
