"""The DE study: its fold loop reproduces train_de's ``cross_validate`` exactly, and ``run_tune_de`` writes
a valid ``de:`` params file with one nested MLflow run per trial."""

from __future__ import annotations

import mlflow
import pytest
import yaml

from histcode.config import base, section
from histcode.genes.config import DEConfig
from histcode.genes.metrics import per_gene_metrics, summarise
from histcode.genes.train import cross_validate
from histcode.tuning.de_objective import de_fold_evaluator, de_score, load_de_data
from histcode.tuning.space import overlay
from histcode.tuning.stage import run_tune_de

from .conftest import GENES, use_project


@pytest.fixture(scope="module")
def de_project(tmp_path_factory: pytest.TempPathFactory, fresh_mlflow):
    root = tmp_path_factory.mktemp("tune_de")
    mp = pytest.MonkeyPatch()
    params = use_project(root, fresh_mlflow, mp)
    yield root, params
    mp.undo()


def test_fold_objective_matches_train_de_cross_validation(de_project) -> None:
    _, params = de_project
    bcfg, cfg = base(params), section(DEConfig, "de", params)
    data = load_de_data(bcfg, cfg)
    assert data.genes == GENES and data.fold_ids == [0, 1, 2] and len(data.patient_ids) == 12
    cfg = overlay(cfg, {"lr": 0.02, "weight_decay": 1e-4, "epochs": 40})
    evaluate, score = de_fold_evaluator(data, seed=bcfg.seed), de_score("pearson_r_mean")
    outcomes = [evaluate(cfg, k) for k in data.fold_ids]
    ref, _ = cross_validate(data.x, data.y_reg, data.y_cls, data.patient_ids, data.genes, data.folds,
                            lr=0.02, weight_decay=1e-4, epochs=40, seed=bcfg.seed, progress=False)
    expected = summarise(per_gene_metrics(ref))["pearson_r_mean"]
    assert score(outcomes) == pytest.approx(expected, abs=1e-12)
    # the planted signal gives a positive held-out correlation (8 training patients, 16 inputs: weak but
    # clearly above 0; recovery strength itself is tested in tests/genes)
    assert expected > 0.05


def test_run_tune_de_writes_best_de_section_and_nested_runs(de_project) -> None:
    root, params = de_project
    result = run_tune_de("params.yaml")
    s = result.summary
    assert (s.n_trials, s.n_complete) == (3, 3) and s.objective == "pearson_r_mean"
    assert (root / "optuna/tune_de.db").is_file()
    loaded = yaml.safe_load(result.best_path.read_text())
    cfg = section(DEConfig, "de", loaded)
    assert cfg == overlay(section(DEConfig, "de", params), s.best_params)
    assert cfg.epochs in (20, 40, 60) and cfg.top_l == 5
    assert result.command.startswith("dvc exp run -S de.lr=")
    # tune.de.folds: null searches every fold: no fold is left to check the choice, and the file says so
    assert result.check.holds is None and result.check.metrics() == {"heldout_folds": 0}
    assert "Every fold was searched, so pearson_r_mean" in result.best_path.read_text()
    client = mlflow.MlflowClient()
    children = client.search_runs(
        [client.get_experiment_by_name("histcode/tune").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    assert len(children) == 3 and all(r.data.tags["histcode.stage"] == "tune_de" for r in children)
    best = next(r for r in children if r.data.tags["optuna.trial"] == str(s.best_trial))
    assert best.data.metrics["pearson_r_mean"] == pytest.approx(s.best_value)
