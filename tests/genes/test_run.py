"""End-to-end train_de on a tiny on-disk cohort (DESIGN §4 files), with and without MLflow."""

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from histcode.config import base, section
from histcode.genes.config import DEConfig
from histcode.genes.run import train_de
from histcode.genes.stage import run_train_de


def test_train_de_writes_contract_outputs_and_recovers_signal(toy_cohort, make_params):
    params = make_params(toy_cohort["root"])
    result = train_de(section(DEConfig, "de", params), base(params))
    data, cohort = toy_cohort["data"], toy_cohort["cohort"]
    pred = pd.read_parquet(data / "predictions/de/toy.parquet")
    assert list(pred.columns) == ["patient_id", "gene", "fold", "y_true_log10fc", "y_pred_log10fc",
                                  "y_true_label", "p_label"]
    assert len(pred) == 30 * 5 and not pred.duplicated(["patient_id", "gene"]).any()
    truth = toy_cohort["log10"].stack().rename("t").reset_index().rename(columns={"level_1": "gene"})
    merged = pred.merge(truth, on=["patient_id", "gene"])
    np.testing.assert_allclose(merged["y_true_log10fc"], merged["t"])
    per_gene = pd.read_csv(data / "predictions/de/toy_per_gene.csv").set_index("gene")
    assert per_gene.loc["PLANT_A", "pearson_r"] > 0.7 and per_gene.loc["PLANT_B", "pearson_r"] > 0.7
    assert abs(per_gene.loc["NULL_A", "pearson_r"]) < 0.5 and abs(per_gene.loc["NULL_B", "pearson_r"]) < 0.5
    assert "mil_pearson_r" in per_gene.columns and np.isfinite(per_gene.loc["CD3D", "mil_pearson_r"])
    folds = pd.read_csv(data / "predictions/de/toy_folds.csv")
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3] and len(folds) == 30
    inputs = pd.read_csv(data / "predictions/de/toy_inputs.csv")
    assert (inputs["status"] == "ok").all() and (inputs["n_top"] == 5).all()
    # per-gene attention: one file per patient, same tiles as the features, softmax weights
    files = sorted((data / "attention_genes" / cohort / "CD3D").glob("*.h5"))
    assert len(files) == 30
    with h5py.File(files[0], "r") as fa, h5py.File(data / "features/toy/adco" / files[0].name, "r") as ff:
        np.testing.assert_array_equal(fa["coords"][:], ff["coords"][:])
        assert abs(fa["attention"][:].sum() - 1) < 1e-4 and fa.attrs["gene"] == "CD3D"
    ckpt = torch.load(data / "models/de/de_model.pt", weights_only=False)
    # default method summaries/rrr: 6 PCs (D=6) + 3 quantiles of each + 16 prototype proportions
    assert ckpt["genes"] == ["PLANT_A", "PLANT_B", "NULL_A", "NULL_B", "CD3D"] and ckpt["in_dim"] == 6 + 18 + 16
    assert ckpt["method"] == "summaries/rrr" and ckpt["model_class"] == "LinearDEModel"
    assert (data / "models/de/summary_transform.joblib").exists() and result.design.shape == (30, 40)
    # every method on the same folds, the paper's beside the registered one
    methods = pd.read_csv(data / "predictions/de/toy_methods.csv")
    assert methods["method"].tolist()[:2] == ["summaries/rrr", "paper/heads"]
    assert methods.set_index("method").loc["summaries/rrr", "pearson_r_median"] > 0.5
    # timings are metrics, never data: the same inputs give the same methods.csv
    assert "seconds" not in methods.columns
    assert all(result.metrics[f"method.{m}.seconds"] > 0 for m in methods["method"])
    allp = pd.read_parquet(data / "predictions/de/toy_methods.parquet")
    assert set(allp["method"]) == set(methods["method"]) and len(allp) == len(methods) * 30 * 5
    assert (allp.groupby("patient_id")["fold"].nunique() == 1).all()
    rrr = allp[allp["method"] == "summaries/rrr"].drop(columns="method").reset_index(drop=True)
    pd.testing.assert_frame_equal(rrr, pred)
    assert (data / "models/de/gene_mil/CD3D.pt").exists()
    assert result.metrics["n_patients"] == 30 and result.metrics["n_folds"] == 4


def test_gene_mil_fits_in_worker_processes_write_the_same_files(toy_cohort, make_params):
    """de.mil_workers fits the per-gene MIL models (genes x folds + finals) at once in spawned processes; every
    fit is seeded by (gene, fold), so predictions, attention files and final models equal the one-by-one run."""
    data = toy_cohort["data"]

    def run(workers: int) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, torch.Tensor]]:
        params = make_params(toy_cohort["root"], methods=[], heatmap_genes=["CD3D", "PLANT_A"], mil_workers=workers)
        train_de(section(DEConfig, "de", params), base(params))
        per_gene = pd.read_csv(data / "predictions/de/toy_per_gene.csv")
        att = {}
        for f in sorted((data / "attention_genes" / toy_cohort["cohort"]).rglob("*.h5")):
            with h5py.File(f, "r") as fh:
                att[str(f.relative_to(data))] = fh["attention_raw"][:]
        final = torch.load(data / "models/de/gene_mil/PLANT_A.pt", weights_only=False)
        return per_gene, att, final

    one_by_one, parallel = run(0), run(2)
    pd.testing.assert_frame_equal(parallel[0], one_by_one[0])
    assert parallel[1].keys() == one_by_one[1].keys() and len(parallel[1]) == 60
    for key, scores in one_by_one[1].items():
        np.testing.assert_array_equal(parallel[1][key], scores)
    state_a, state_b = one_by_one[2]["state_dict"], parallel[2]["state_dict"]
    assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_run_train_de_logs_and_registers(toy_cohort, make_params, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    params = make_params(toy_cohort["root"], epochs=50, mil_epochs=2, heatmap_genes=["CD3D", "NOT_A_GENE"])
    result = run_train_de(params)
    import mlflow

    from histcode.genes.heads import de_from_stored
    from histcode.registry import load_model

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("histcode-de", "challenger")
    assert version.tags["cohort"] == "toy" and "metric.pearson_r_median" in version.tags
    run = client.get_run(version.run_id)
    assert run.data.metrics["n_patients"] == 30
    # the metrics file DVC tracks (cache: false) carries what MLflow has, the methods' seconds among them
    recorded = json.loads((toy_cohort["root"] / "reports/metrics/train_de.json").read_text())
    assert recorded["n_patients"] == 30 and recorded["method.summaries/rrr.seconds"] > 0
    assert run.data.metrics["method.summaries/rrr.seconds"] == pytest.approx(recorded["method.summaries/rrr.seconds"])
    arts = {a.path for a in client.list_artifacts(version.run_id, "de")}
    assert {"de/toy_per_gene.csv", "de/toy_inputs.csv", "de/genes.txt"} <= arts
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(children) == 4
    # the run page opens on the registered method and every method's numbers on the same folds, a row each
    note = run.data.tags["mlflow.note.content"]
    method = result.methods["method"].iloc[0]
    assert note.startswith(f"**Registered: {version.tags['de.method']}**, median held-out Pearson r ")
    assert sum(line.startswith("| ") for line in note.splitlines()) == 1 + len(result.methods)  # header + rows
    assert f"{result.metrics[f'method.{method}.seconds']:.1f} |" in note
    model = de_from_stored(load_model("histcode-de", alias="challenger"))
    x = torch.from_numpy(result.design[:3].astype("float32"))
    with torch.no_grad():
        torch.testing.assert_close(model(x), result.model(x))
    # the DE evidence is the held-out predictions; the gate promotes it, then refuses a deliberately worse one
    from histcode.registry.evidence import load_null
    from histcode.registry.gate import GateConfig
    from histcode.registry.promotion import promote

    null = load_null("histcode-de", version.version)  # the CV null travels with the evidence, digest-checked
    assert len(null) == 20 * 5 and set(null["gene"]) == set(result.model.genes)
    np.testing.assert_allclose(null.sort_values(["shuffle", "gene"])["pearson_r"],
                               result.cv_null.sort_values(["shuffle", "gene"])["pearson_r"])
    gate = GateConfig(thresholds={"histcode-de": 2}, bootstrap=200, de_n_random=30, de_gene_test="cv_null")
    first = promote("histcode-de", gate)
    assert first.promote and first.details["n_genes_significant_bh"] >= 2, first.reason
    assert client.get_model_version_by_alias("histcode-de", "champion").version == version.version
    worse = make_params(toy_cohort["root"], method="paper/heads", methods=[], epochs=2, heatmap_genes=[])
    run_train_de(worse)
    second = promote("histcode-de", gate)
    # refused: by the absolute rule (too few genes beat random) or, past it, by the paired comparison
    assert not second.promote and (second.delta is None or second.delta < 0), second.reason
    assert client.get_model_version_by_alias("histcode-de", "champion").version == version.version
    tags = client.get_model_version_by_alias("histcode-de", "challenger").tags
    assert tags["gate.decision"] == "refused" and tags["evidence.kind"] == "de"
