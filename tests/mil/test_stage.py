"""The train_mil stage end to end on a tiny cohort: file contracts, registry round trip, external hook."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from histcode.metrics.classification import classification_metrics
from histcode.mil.bags import read_bag
from histcode.mil.external import evaluate_cohort
from histcode.mil.model import build_mil, load_mil

from .conftest import make_cohort

MIL = {
    "hidden": 16,
    "attn_hidden": 8,
    "dropout": 0.0,
    "lr": 0.003,
    "max_epochs": 10,
    "min_epochs": 2,
    "patience": 3,
    "n_folds": 3,
    "val_frac": 0.15,
    "bootstrap": 100,
    "progress": False,
    "threads": 1,
    "workers": 0,
    "baselines": ["clam_sb", "gated_attention", "dsmil", "mean", "max"],
    "baseline_max_epochs": 6,
}
METHODS = MIL["baselines"]


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory: pytest.TempPathFactory, fresh_mlflow) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("stage")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    fresh_mlflow(root, mp)
    make_cohort(root, n_patients=12, cohort="toy")
    make_cohort(root, n_patients=4, cohort="ext", seed=9, site="EE")
    make_cohort(root, n_patients=12, cohort="toy", encoder="random", seed=0, signal=0.0)  # the encoder comparison
    bad = "TCGA-TT-0099-01Z-00-DX1"  # a truncated features file: recorded as failed, the rest runs
    (root / f"data/features/toy/adco/{bad}.h5").write_bytes(b"\x89HDF\r\n")
    slides = pd.read_csv(root / "data/manifests/toy/slides.csv")
    extra = slides.iloc[[0]].assign(slide_id=bad, patient_id="TCGA-TT-0099")
    pd.concat([slides, extra]).to_csv(root / "data/manifests/toy/slides.csv", index=False)
    import mlflow

    from histcode.registry import log_and_register

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    from histcode import tracking

    # an encoder registered by its pretrain run, as the SSL stage does (explicit experiment: fluent MLflow state
    # from earlier tests in the session may point at an experiment id this fresh store does not have)
    with tracking.start_run("pretrain", run_name="pretrain", stage="pretrain") as enc_run:
        # any model kind the registry can rebuild stands in for the encoder network here
        log_and_register(build_mil({"pooling": "mean", "in_dim": 3, "hidden": 4}), "histcode-encoder",
                         input_example=np.zeros((2, 3), np.float32))
    (root / "data/models/encoder").mkdir(parents=True)
    (root / "data/models/encoder/encoder.json").write_text(json.dumps({"run_id": enc_run.info.run_id}))
    cohorts = {
        c: {"kind": "gdc", "source_dir": "x", "slide_dir": "x", "role": r}
        for c, r in (("toy", "train"), ("ext", "external"))
    }
    params = {
        "base": {"seed": 1, "train_cohort": "toy", "cohorts": cohorts},
        "extract": {"encoders": ["adco", "random"]},
        "mil": MIL,
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    from histcode.mil.stage import run_train_mil

    metrics = run_train_mil("params.yaml")
    yield root, metrics
    mp.undo()


def test_outputs_follow_the_contracts(stage_run: tuple[Path, dict]) -> None:
    root, metrics = stage_run
    manifest = pd.read_csv(root / "data/manifests/toy/slides.csv")
    failed = pd.read_csv(root / "data/models/mil/failures.csv")
    assert failed["slide_id"].tolist() == ["TCGA-TT-0099-01Z-00-DX1"] and "HDF5" in failed["reason"][0]
    assert metrics["n_failed"] == 1 and metrics["n_patients"] == 12
    manifest = manifest[manifest["slide_id"] != "TCGA-TT-0099-01Z-00-DX1"]
    preds = pd.read_csv(root / "data/predictions/mil/toy.csv")
    assert list(preds.columns) == [
        "slide_id",
        "patient_id",
        "fold",
        "split",
        "label",
        "prob_tumor",
        "pooling",
    ]
    table = {r["method"]: r for r in json.loads((root / "reports/mil/table1.json").read_text())["table1"]}
    assert list(table) == METHODS
    wide = preds.pivot(index="slide_id", columns="pooling", values="prob_tumor")
    for pooling in METHODS:
        p = preds[preds["pooling"] == pooling]
        assert sorted(p["slide_id"]) == sorted(manifest["slide_id"]) and set(p["split"]) == {"test"}
        ref = classification_metrics(p["label"], p["prob_tumor"], n_boot=100, seed=1)
        for key in ("auc", "accuracy", "balanced_accuracy"):  # declared: a few plain keys per method
            assert metrics[f"{pooling}.{key}"] == pytest.approx(ref[key])
        for key in ("auc_ci_low", "auc_ci_high", "accuracy_ci_low", "balanced_accuracy_ci_high"):  # detail JSON
            assert table[pooling][key] == pytest.approx(ref[key])
            assert f"{pooling}.{key}" not in metrics
        if pooling != "clam_sb":  # paired ΔAUC of HistCode minus the method, on the same slides
            y = p.set_index("slide_id")["label"].reindex(wide.index)
            delta = roc_auc_score(y, wide["clam_sb"]) - roc_auc_score(y, wide[pooling])
            assert metrics[f"{pooling}.delta_auc"] == pytest.approx(delta)
            assert table[pooling]["delta_auc_ci_low"] <= delta <= table[pooling]["delta_auc_ci_high"]
    assert set(metrics) == {"primary_pooling", "cohort", "cv_groups", "n_slides", "n_failed", "n_patients"} | {
        f"{m}.{k}" for m in [*METHODS, "clam_sb/random"] for k in ("auc", "accuracy", "balanced_accuracy")
    } | {f"{m}.delta_auc" for m in [*METHODS[1:], "clam_sb/random"]} | {  # + each final model's threshold/calibration
        f"{m}.{k}" for m in METHODS for k in ("decision_threshold", "accuracy_at_threshold",
                                              "balanced_accuracy_at_threshold", "brier", "ece", "ece_bins")
    }
    assert metrics["clam_sb.auc"] > 0.9 and metrics["clam_sb/random.auc"] < metrics["clam_sb.auc"]
    md = (root / "reports/mil/table1.md").read_text()
    assert "| **clam_sb** (HistCode) |" in md and "| dsmil |" in md and "clam_sb/random" in md
    assert json.loads((root / "reports/metrics/mil.json").read_text()) == pytest.approx(metrics)
    for pooling in METHODS:  # one file per DVC plot line
        roc = pd.read_csv(root / f"reports/plots/mil_roc/{pooling}.csv")
        pr = pd.read_csv(root / f"reports/plots/mil_pr/{pooling}.csv")
        assert list(roc.columns) == ["fpr", "tpr"] and list(pr.columns) == ["recall", "precision"]
        assert roc["fpr"].iloc[0] == 0.0 and roc["tpr"].iloc[-1] == 1.0 and roc["fpr"].is_monotonic_increasing
    assert (root / "reports/figures/mil/roc_pr.png").stat().st_size > 10_000
    splits = pd.read_csv(root / "data/splits/toy/splits.csv")
    assert len(splits) == 12 * 3
    for pooling in METHODS:  # every method's per-tile scores, for its heatmaps
        for sid in manifest["slide_id"]:
            feats, coords, _ = read_bag(root / f"data/features/toy/adco/{sid}.h5")
            with h5py.File(root / f"data/attention/toy/{pooling}/{sid}.h5") as f:
                np.testing.assert_array_equal(f["coords"][()], coords)
                a, raw = f["attention"][()], f["attention_raw"][()]
            assert a.shape == (len(feats),) and a.sum() == pytest.approx(1, abs=1e-5)
            if pooling in ("gated_attention", "clam_sb"):
                np.testing.assert_allclose(a, torch.softmax(torch.from_numpy(raw), 0).numpy(), rtol=1e-5)


def test_registered_model_round_trips_by_alias(stage_run: tuple[Path, dict]) -> None:
    root, _ = stage_run
    from histcode.registry import get_version
    from histcode.registry.evidence import load_evidence

    local = load_mil(root / "data/models/mil")  # index → primary pooling
    registered = load_mil("models:/histcode-mil@challenger")
    assert local.pooling.name == registered.pooling.name == "clam_sb"  # HistCode's model
    bag = torch.from_numpy(
        read_bag(next((root / "data/features/toy/adco").glob("*.h5")))[0].astype(np.float32)
    )
    with torch.no_grad():
        torch.testing.assert_close(registered(bag), local(bag))
    mv = get_version("histcode-mil", "challenger")
    assert mv.tags["encoder_version"] == "histcode-encoder/1" and mv.tags["pooling"] == "clam_sb"
    assert len(mv.tags["dvc_data_hash"]) == 32 and len(mv.tags["sha256.weights.safetensors"]) == 64
    evidence, kind = load_evidence("histcode-mil", mv.version)
    assert kind == "binary" and len(evidence) == 21


def test_external_hook_reports_every_slide_and_failures(stage_run: tuple[Path, dict]) -> None:
    root, _ = stage_run
    fdir = root / "data/features/ext/adco"
    manifest = pd.read_csv(root / "data/manifests/ext/slides.csv")
    gone = manifest["slide_id"].iloc[0]
    (fdir / f"{gone}.h5").rename(root / "moved.h5")
    try:
        model = load_mil("models:/histcode-mil@challenger")
        preds, m = evaluate_cohort(
            fdir, root / "data/manifests/ext/slides.csv", model, n_boot=50, seed=0, progress=False
        )
    finally:
        (root / "moved.h5").rename(fdir / f"{gone}.h5")
    assert sorted(preds["slide_id"]) == sorted(set(manifest["slide_id"]) - {gone})
    assert set(preds["fold"]) == {-1} and set(preds["split"]) == {"external"}
    assert m["n_failed"] == 1 and m["failures"][0]["slide_id"] == gone
    assert "no features file" in m["failures"][0]["reason"]
    assert m["auc"] == pytest.approx(
        classification_metrics(preds["label"], preds["prob_tumor"], n_boot=0)["auc"]
    )


def test_decision_threshold_is_chosen_on_held_out_predictions_and_stored(stage_run: tuple[Path, dict]) -> None:
    from sklearn.metrics import brier_score_loss

    from histcode.metrics.threshold import choose_threshold
    from histcode.registry import get_version

    root, metrics = stage_run
    preds = pd.read_csv(root / "data/predictions/mil/toy.csv")
    ga = preds[preds["pooling"] == "clam_sb"]
    expected = choose_threshold(ga["label"], ga["prob_tumor"])["threshold"]
    stored = json.loads((root / "data/models/mil/clam_sb/decision_threshold.json").read_text())
    assert stored["threshold"] == pytest.approx(expected) and stored["method"] == "youden_oof"
    assert float(get_version("histcode-mil", "challenger").tags["decision_threshold"]) == pytest.approx(expected)
    assert metrics["clam_sb.decision_threshold"] == pytest.approx(expected)
    acc = ((ga["prob_tumor"] >= expected).astype(int) == ga["label"]).mean()
    assert metrics["clam_sb.accuracy_at_threshold"] == pytest.approx(acc)
    assert metrics["clam_sb.brier"] == pytest.approx(brier_score_loss(ga["label"], ga["prob_tumor"]))
    assert 0.0 <= metrics["mean.ece"] <= 1.0 and metrics["max.ece_bins"] == 10
    assert (root / "reports/figures/mil/reliability.png").stat().st_size > 10_000


def test_external_workflow_uses_the_stored_threshold_and_a_separate_calibration_subset(
    stage_run: tuple[Path, dict],
) -> None:
    from histcode.evaluation.champion_external import evaluate_external
    from histcode.registry import get_version

    root, _ = stage_run
    threshold = float(get_version("histcode-mil", "challenger").tags["decision_threshold"])
    m = evaluate_external("params.yaml", "ext", model="models:/histcode-mil@challenger", progress=False)
    preds = pd.read_csv(root / "data/predictions/mil/ext.csv")
    assert m["threshold"] == pytest.approx(threshold) and m["threshold_source"] == "registry_tag"
    ref = classification_metrics(preds["label"], preds["prob_tumor"], n_boot=0, threshold=threshold)
    assert m["accuracy"] == pytest.approx(ref["accuracy"]) and m["auc"] == pytest.approx(ref["auc"])
    assert json.loads((root / "reports/metrics/eval_ext.json").read_text())["ece"] == pytest.approx(m["ece"])
    assert (root / "reports/figures/external/ext_reliability.png").exists()
    # a calibration subset naming one patient: that patient's slides fit the map, only the others are scored
    cal_patient = preds.groupby("patient_id")["label"].nunique().idxmax()
    (root / "cal.csv").write_text(f"patient_id\n{cal_patient}\n")
    m = evaluate_external("params.yaml", "ext", model=str(root / "data/models/mil"), calibration=root / "cal.csv",
                          recalibration="isotonic", progress=False)
    n_cal = int((preds["patient_id"] == cal_patient).sum())
    assert m["threshold_source"] == "model_dir" and m["threshold"] == pytest.approx(threshold)
    assert m["n_calibration"] == n_cal and m["n_test"] == len(preds) - n_cal
    test = preds[preds["patient_id"] != cal_patient]
    assert m["test_accuracy_at_threshold"] == pytest.approx(
        ((test["prob_tumor"] >= threshold).astype(int) == test["label"]).mean()
    )
    assert 0.0 <= m["recalibrated_accuracy"] <= 1.0 and m["recalibration"] == "isotonic"


def test_external_metrics_leave_out_what_the_model_trained_on(stage_run: tuple[Path, dict]) -> None:
    """An "external" cohort holding a training slide (same id) and another slide of a training patient: both are
    left out of the metrics and listed with why; a cohort of training slides only is refused."""
    import shutil

    import mlflow

    from histcode.evaluation.champion_external import evaluate_external
    from histcode.registry.models import RegistryError

    root, _ = stage_run
    toy, ext = (pd.read_csv(root / f"data/manifests/{c}/slides.csv") for c in ("toy", "ext"))
    same = toy.iloc[[0]]  # a training slide, listed again
    other = toy.iloc[[1]].assign(slide_id="TCGA-TT-0001-01Z-00-DX2")  # another slide of a training patient
    feats = {sid: root / f"data/features/ext/adco/{sid}.h5" for sid in ext["slide_id"]}
    feats.update({sid: root / f"data/features/toy/adco/{toy.iloc[i].slide_id}.h5"
                  for i, sid in ((0, same["slide_id"].iloc[0]), (1, other["slide_id"].iloc[0]))})
    params = yaml.safe_load((root / "params.yaml").read_text())
    for name, rows in (("leak", pd.concat([ext, same, other])), ("all_seen", same)):
        rows.assign(cohort=name).to_csv(_dir(root / f"data/manifests/{name}") / "slides.csv", index=False)
        for sid in rows["slide_id"]:
            shutil.copy(feats[sid], _dir(root / f"data/features/{name}/adco") / f"{sid}.h5")
        params["base"]["cohorts"][name] = {"kind": "gdc", "source_dir": "x", "slide_dir": "x", "role": "external"}
    (root / "params_leak.yaml").write_text(yaml.safe_dump(params))
    model = "models:/histcode-mil@challenger"
    m = evaluate_external("params_leak.yaml", "leak", model=model, progress=False)
    preds = pd.read_csv(root / "data/predictions/mil/leak.csv")
    assert sorted(preds["slide_id"]) == sorted(ext["slide_id"]) and m["n"] == len(ext)
    assert m["n_seen_in_training"] == 2 and m["training_cohort"] == "toy"
    assert {d["slide_id"]: d["reason"] for d in m["seen_in_training"]} == {
        same["slide_id"].iloc[0]: f"slide {same['slide_id'].iloc[0]} is also in the training cohort (same slide id)",
        other["slide_id"].iloc[0]: f"patient {other['patient_id'].iloc[0]} is in the training cohort"}
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("histcode/external").experiment_id],
                                "attributes.run_name = 'eval-leak'")
    assert run.data.tags["seen_in_training"] == "2 left out (seen_in_training.json)"  # what the UI shows
    assert run.data.tags["mlflow.note.content"].startswith("leak: ")  # the printed line opens the run page
    assert "(2 more left out: seen in training cohort toy)" in run.data.tags["mlflow.note.content"]
    listed = Path(client.download_artifacts(run.info.run_id, "seen_in_training.json", str(root / "dl")))
    listed = json.loads(listed.read_text())
    assert listed["training_cohort"] == "toy" and listed["slides"] == m["seen_in_training"]
    kept = evaluate_external("params_leak.yaml", "leak", model=model, progress=False, keep_training_patients=True)
    assert kept["n_seen_in_training"] == 1 and kept["n"] == len(ext) + 1
    with pytest.raises(RegistryError, match=r"every slide of all_seen \(1\) was seen in training cohort toy"):
        evaluate_external("params_leak.yaml", "all_seen", model=model, progress=False)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_each_method_and_encoder_is_a_comparable_mlflow_run(stage_run: tuple[Path, dict]) -> None:
    """The compare view's rows: one run per (method, encoder) with params and plain metrics; final runs too."""
    import mlflow

    root, _ = stage_run

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("histcode/mil")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # MLflow 3 UI: model-training mode
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id], max_results=500)}
    names = [f"{m}/adco" for m in METHODS] + ["clam_sb/random"]
    for name in names:
        run = runs[name]
        method, encoder = name.split("/")
        assert run.data.params["pooling"] == method and run.data.params["encoder"] == encoder
        assert {"hidden", "lr", "weight_decay", "max_epochs", "dropout"} <= set(run.data.params)
        assert {"auc", "accuracy", "balanced_accuracy", "auc_ci_low", "auc_ci_high"} <= set(run.data.metrics)
        for fold in range(3):
            fold_run = runs[f"{name}/fold{fold}"]
            assert fold_run.data.params["pooling"] == method and fold_run.data.params["fold"] == str(fold)
            assert fold_run.data.tags["mlflow.parentRunId"] == run.info.run_id
    assert runs["clam_sb/adco"].data.params["inst_b"] == "8" and runs["clam_sb/adco"].data.params["bag_weight"]
    assert runs["dsmil/adco"].data.params["max_epochs"] == "6"  # the baselines' shorter schedule
    assert runs["clam_sb/adco"].data.params["max_epochs"] == "10"
    for method in METHODS:
        final = runs[f"{method}/adco/final"]
        assert final.data.params["pooling"] == method and int(final.data.params["epochs"]) >= 2
        assert final.data.metrics["auc"] == pytest.approx(runs[f"{method}/adco"].data.metrics["auc"])
    assert "clam_sb/random/final" not in runs  # other encoders: CV only
    (parent,) = [r for name, r in runs.items() if name.startswith("train_mil/")]
    table1 = (root / "reports/mil/table1.md").read_text()  # Table 1 with CIs opens the parent run's page
    note = parent.data.tags["mlflow.note.content"]
    assert note.endswith(table1) and "| **clam_sb** (HistCode) |" in table1
    assert note.startswith("**HistCode (clam_sb)**: AUC ")  # the one sentence the collapsed description shows


def test_a_rerun_writes_the_same_model_files(stage_run: tuple[Path, dict]) -> None:
    """The same inputs and params give the same bytes: a rerun registers a new MLflow version (here v2), and
    the registry numbering stays in MLflow's tags, out of the DVC-tracked model files (before, ``mil.json`` and
    the models carried ``registered_version`` / ``encoder_version``, so a fresh store or a forced rerun changed
    ``data/models/mil`` and DVC reran the heatmaps for nothing). Runs last: it adds a version to the store."""
    import hashlib

    import mlflow

    from histcode.mil.stage import run_train_mil

    root, _ = stage_run

    def digests() -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((root / "data/models/mil").rglob("*")) if p.is_file()}

    before = digests()
    assert "registered_version" not in (root / "data/models/mil/mil.json").read_text()
    assert "histcode-encoder/" not in (root / "data/models/mil/clam_sb/model.json").read_text()
    run_train_mil("params.yaml")
    versions = mlflow.MlflowClient().search_model_versions("name='histcode-mil'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert {v.tags["encoder_version"] for v in versions} == {"histcode-encoder/1"}  # lineage kept in MLflow
    assert digests() == before
