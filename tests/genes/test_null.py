"""The shuffled-target CV null of a DE method (``histcode.genes.null``) on the toy cohort."""

import numpy as np
import pandas as pd

from histcode.config import base, section
from histcode.genes.config import DEConfig
from histcode.genes.methods import MethodSettings, Representations, cross_validate_method
from histcode.genes.null import shuffled_cv_null
from histcode.genes.run import load_de_data, train_de
from histcode.metrics.de_stats import columnwise_pearson, compare_to_random, matrices


def _setup(toy_cohort, make_params):
    params = make_params(toy_cohort["root"])
    cfg, bcfg = section(DEConfig, "de", params), base(params)
    data = load_de_data(cfg, bcfg)
    settings = MethodSettings(lr=cfg.lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs,
                              inner_folds=cfg.inner_folds, log2_threshold=1.5, seed=bcfg.seed)
    reps = Representations(data.inputs.patient_ids, data.inputs.x, data.summaries)
    return data, reps, settings


def test_null_is_the_cv_rerun_on_permuted_target_rows_and_separates_the_planted_genes(toy_cohort, make_params):
    data, reps, settings = _setup(toy_cohort, make_params)
    null = shuffled_cv_null("summaries/ridge", reps, data.y_reg, data.y_cls, data.targets.genes, data.folds,
                            settings, n_shuffles=6, seed=3)
    assert list(null.columns) == ["method", "shuffle", "gene", "pearson_r"] and len(null) == 6 * 5
    assert (null["method"] == "summaries/ridge").all() and null["pearson_r"].between(-1, 1).all()
    # shuffle 0 by hand: the same permutation of the target rows, the same folds and method
    perm = np.random.default_rng(3).permutation(len(reps.patient_ids))
    pred, _ = cross_validate_method("summaries/ridge", reps, data.y_reg[perm], data.y_cls[perm],
                                    data.targets.genes, data.folds, settings)
    truth, guess, _ = matrices(pred.drop(columns="method"))
    np.testing.assert_allclose(null[null["shuffle"] == 0]["pearson_r"],
                               columnwise_pearson(truth.to_numpy(), guess.to_numpy()))
    again = shuffled_cv_null("summaries/ridge", reps, data.y_reg, data.y_cls, data.targets.genes, data.folds,
                             settings, n_shuffles=6, seed=3)
    pd.testing.assert_frame_equal(again, null)
    # the observed CV: the planted genes lie beyond every null correlation, the noise genes inside them
    obs, _ = cross_validate_method("summaries/ridge", reps, data.y_reg, data.y_cls, data.targets.genes,
                                   data.folds, settings)
    table, _, _ = compare_to_random(obs.drop(columns="method"), n_random=10, seed=0, alternative="greater",
                                    fdr=0.05, gene_test="cv_null", cv_null=null.drop(columns="method"))
    p = table.set_index("gene")["cv_null_p"]
    assert p["PLANT_A"] == p["PLANT_B"] == 1 / 31
    assert p["NULL_A"] > 0.05 and p["NULL_B"] > 0.05


def test_train_de_writes_the_null_of_the_registered_method(toy_cohort, make_params):
    params = make_params(toy_cohort["root"], methods=["paper/ridge"], heatmap_genes=[], null_shuffles=4)
    result = train_de(section(DEConfig, "de", params), base(params))
    null = pd.read_parquet(toy_cohort["data"] / "predictions/de/toy_cv_null.parquet")
    assert set(null["method"]) == {"summaries/rrr"} and len(null) == 4 * 5
    pd.testing.assert_frame_equal(null, result.cv_null)
    none = make_params(toy_cohort["root"], methods=["paper/ridge"], heatmap_genes=[], null_shuffles=0)
    train_de(section(DEConfig, "de", none), base(none))
    assert len(pd.read_parquet(toy_cohort["data"] / "predictions/de/toy_cv_null.parquet")) == 0
