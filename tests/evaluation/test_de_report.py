"""End-to-end evaluate_de on hand-made train_de outputs, a real H&E slide for the heatmaps and a planted
synthetic ground truth (gene effects + lymphocyte region masks)."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from histcode.config import base, section
from histcode.evaluation.de_config import EvaluateDEConfig
from histcode.evaluation.de_report import evaluate_de
from histcode.evaluation.de_stage import run_evaluate_de
from histcode.io.coords import write_coords
from histcode.io.truth import write_lymphocyte_map, write_region_mask

SLIDE = Path(__file__).resolve().parents[1] / "data" / "CMU-1-Small-Region.svs"  # 2220 x 2967, 0.499 µm/px
PLANTED = ["PIK3CA", "MYC", "GATA3", "CD3D", "CD19", "P1", "P2", "P3"]
NULL = [f"N{i}" for i in range(8)]


def _cohort(root: Path, n: int = 40) -> dict:
    rng = np.random.default_rng(0)
    data = root / "data"
    rows, log2 = [], {}
    s = rng.normal(size=n)
    for i in range(n):
        pid = f"TCGA-AA-{i:04d}"
        log2[pid] = {}
        for g in PLANTED + NULL:
            planted = g in PLANTED
            t = 0.5 + (0.3 * s[i] if planted else rng.normal(scale=0.3))
            pred = 0.5 + (0.3 * s[i] + rng.normal(scale=0.1) if planted else rng.normal(scale=0.05))
            lab = int(abs(np.log2(max(10**t - 1, 1e-2))) > 1.5)
            rows.append({"patient_id": pid, "gene": g, "fold": i % 5, "y_true_log10fc": t, "y_pred_log10fc": pred,
                         "y_true_label": lab, "p_label": float(np.clip(0.5 + (pred - 0.5), 0, 1))})
            log2[pid][g] = np.log2(max(10**t - 1, 1e-2))
    pred = pd.DataFrame(rows)
    pred["y_true_label"] = pred["y_true_label"].astype("Int64")
    (data / "predictions/de").mkdir(parents=True)
    pred.to_parquet(data / "predictions/de/toy.parquet", index=False)
    # train_de's per-method outputs: the registered method (= the predictions above) and a worse one
    worse = pred.assign(y_pred_log10fc=rng.normal(0.5, 0.1, len(pred)))
    pd.concat([pred.assign(method="summaries/rrr"), worse.assign(method="paper/heads")]).to_parquet(
        data / "predictions/de/toy_methods.parquet", index=False)
    (data / "expression/toy").mkdir(parents=True)
    pd.DataFrame(log2).T.rename_axis("patient_id").to_parquet(data / "expression/toy/log2_fc.parquet")
    # per-gene attention for two slides (both the real CMU-1 slide): high where the planted lymphocytes are
    slide_dir = root / "slides"
    slide_dir.mkdir()
    xs, ys = np.meshgrid(np.arange(0, 2220 - 256, 256), np.arange(0, 2967 - 256, 256))
    coords = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.int32)
    ds = 16
    mask = np.full((2967 // ds + 1, 2220 // ds + 1), 1, np.uint8)  # stroma
    mask[:, : 1024 // ds] = 3  # tumour in the left 4 tile columns
    mask[:, : 768 // ds] = 4  # lymphocyte_dense in the left 3 of them
    lymph = np.zeros(mask.shape, np.uint16)  # lymphocyte nuclei per mask cell: many in the left 3 columns,
    lymph[:, : 768 // ds] = 3  # 3 per 8 µm cell ≈ 47,000/mm²; elsewhere 0 or 1 (≈ 7,800/mm² on average)
    lymph[:, 768 // ds :] = (np.arange(mask.shape[1] - 768 // ds)[::-1] % 2)[None, :]
    gt = data / "synthetic/ground_truth"
    manifest, truth_rows = [], []
    for k, sid in enumerate(["TCGA-AA-0001-01Z-00-DX1", "TCGA-AA-0002-01Z-00-DX1"]):
        shutil.copy(SLIDE, slide_dir / f"{sid}.svs")
        manifest.append({"slide_id": sid, "path": str(slide_dir / f"{sid}.svs"), "patient_id": sid[:12],
                         "cohort": "toy", "sample_type": "tumor", "label": 1, "mpp": 0.499})
        write_coords(data / "tiles/toy" / f"{sid}.h5", coords, {
            "patch_size": 256, "patch_level": 0, "downsample": [1.0, 1.0], "level_dim": [2220, 2967],
            "target_mpp": 0.5, "tile_px": 256, "slide_mpp": 0.499})
        write_region_mask(gt, "toy", sid, mask)
        write_lymphocyte_map(gt, "toy", sid, lymph)
        truth_rows.append({"cohort": "toy", "slide_id": sid, "mask_downsample": ds, "mpp": 0.5})
        raw = np.where(coords[:, 0] < 768, 2.0, -1.0) + rng.normal(scale=0.1, size=len(coords))
        out = data / "attention_genes/toy/CD3D" / f"{sid}.h5"
        out.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(out, "w") as fh:
            fh["coords"], fh["attention_raw"] = coords, raw.astype(np.float32)
            fh["attention"] = (np.exp(raw) / np.exp(raw).sum()).astype(np.float32)
            fh.attrs.update({"gene": "CD3D", "fold": k, "y_true_log10fc": 0.5 + k, "y_pred_log10fc": 0.4})
        ref = np.where(coords[:, 0] < 1024, 1.0, -1.0) + rng.normal(scale=0.01, size=len(coords))
        out = data / "attention/toy/gated_attention" / f"{sid}.h5"
        out.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(out, "w") as fh:
            fh["coords"], fh["attention_raw"] = coords, ref.astype(np.float32)
            fh["attention"] = (np.exp(ref) / np.exp(ref).sum()).astype(np.float32)
    (data / "manifests/toy").mkdir(parents=True)
    pd.DataFrame(manifest).to_csv(data / "manifests/toy/slides.csv", index=False)
    pd.DataFrame(truth_rows).to_csv(gt / "slides.csv", index=False)
    effects = [{"gene": g, "effect": "lymphocyte" if g.startswith("CD") else "cellularity"} for g in PLANTED]
    effects += [{"gene": g, "effect": "null"} for g in NULL]
    pd.DataFrame(effects).to_csv(gt / "gene_effects.csv", index=False)
    gmt = root / "sets.gmt"
    gmt.write_text("PLANTED\tx\t" + "\t".join(PLANTED) + "\nNULLSET\tx\t" + "\t".join(NULL) + "\n")
    return {"data": data, "gmt": gmt}


def _params(root: Path, gmt: Path) -> dict:
    return {
        "base": {"seed": 3, "data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                 "train_cohort": "toy",
                 "cohorts": {"toy": {"kind": "gdc", "source_dir": "x", "slide_dir": "x", "synthetic": True}}},
        "evaluate_de": {"n_random": 30, "gene_sets": str(gmt), "top_genes": 8, "heatmap_slides": 1,
                        "truth_min_density": 20_000, "progress": False},
    }


@pytest.fixture
def cohort(tmp_path: Path) -> dict:
    return _cohort(tmp_path)


def test_evaluate_de_reports_statistics_figures_and_truth(cohort, tmp_path: Path):
    params = _params(tmp_path, cohort["gmt"])
    res = evaluate_de(section(EvaluateDEConfig, "evaluate_de", params), base(params))
    m = res.metrics
    assert m["n_genes"] == 16 and m["n_patients"] == 40 and m["n_folds"] == 5
    assert m["wilcoxon_p"] < 0.01 and m["n_genes_significant_bh"] >= 6
    pg = res.per_gene.set_index("gene")
    assert pg.loc[PLANTED, "significant"].all() and pg.loc[NULL, "significant"].sum() <= 1
    assert abs(m["random_pearson_median"]) < 0.1
    hist = pd.read_csv(tmp_path / "reports/plots/de_pearson_hist.csv")
    assert list(hist.columns) == ["bin", "count"] and hist["count"].sum() == 16 and len(hist) == 20
    fig = tmp_path / "reports/figures/de"
    for name in ("pearson_vs_random.png", "scatter.png", "fc_level.png", "fc_level.csv", "per_gene_stats.csv",
                 "enrichment.csv", "truth_genes.csv", "truth_heatmaps.csv", "truth_planted_vs_null.png",
                 "truth_heatmaps.png", "truth_maps.png"):
        assert (fig / name).stat().st_size > 0, name
    # every method on the same folds, scored the same way (with the planted/null truth)
    methods = pd.read_csv(fig / "methods.csv").set_index("method")
    assert list(methods.index) == ["summaries/rrr", "paper/heads"] and (fig / "methods.png").stat().st_size > 0
    assert methods.loc["summaries/rrr", "wilcoxon_p"] == pytest.approx(m["wilcoxon_p"])
    assert methods.loc["summaries/rrr", "n_genes_significant_bh"] == m["n_genes_significant_bh"]
    assert methods.loc["paper/heads", "wilcoxon_p"] > 0.01 and methods.loc["paper/heads", "n_genes_significant_bh"] <= 1
    assert methods.loc["summaries/rrr", "planted_pearson_mean"] > 0.8
    assert "seconds" not in methods.columns and not any(k.endswith(".seconds") for k in m)  # train_de's metrics
    assert m["n_scatter_genes"] == 5  # PIK3CA MYC GATA3 CD3D CD19 present; PTEN etc. absent
    enr = pd.read_csv(fig / "enrichment.csv").set_index("gene_set")
    assert enr.loc["PLANTED", "k"] == 8 and enr.loc["PLANTED", "significant"]
    # synthetic truth: planted genes beat null genes; CD3D attention sits on the lymphocyte columns
    assert m["truth.n_planted"] == 8 and m["truth.n_null"] == 8
    assert m["truth.planted_pearson_median"] > 0.8 and abs(m["truth.null_pearson_median"]) < 0.4
    assert m["truth.planted_vs_null_wilcoxon_p"] < 1e-3
    # discoveries split by the truth: they add up to the BH count, and the null genes give none here
    assert m["truth.n_significant_planted"] + m["truth.n_significant_null"] == m["n_genes_significant_bh"]
    assert m["truth.n_significant_null"] == 0 and methods.loc["summaries/rrr", "n_significant_null"] == 0
    # 3 of 8 tile columns hold the lymphocytes (threshold between the two column densities)
    assert m["truth.CD3D.lymph_top_k_precision"] == 1.0 and m["truth.CD3D.lymph_chance"] == pytest.approx(3 / 8)
    assert m["truth.CD3D.lymph_auc"] == 1.0 and m["truth.CD3D.lymph_spearman"] > 0.7
    assert m["truth.CD3D.lymph_enrichment"] == pytest.approx(3.0 / ((3 * 3.0 + 5 * 0.5) / 8), rel=0.02)
    assert m["truth.CD3D.lymph_spearman_tumour"] > 0.7 and m["truth.CD3D.lymph_auc_tumour"] == 1.0
    # the tumour model's attention (flat over the 4 tumour columns) marks tumour, not lymphocytes within it
    assert m["truth.reference.lymph_auc"] > 0.8 and abs(m["truth.reference.lymph_spearman_tumour"]) < 0.3
    assert abs(m["truth.reference.lymph_auc_tumour"] - 0.5) < 0.3
    assert np.isnan(m["truth.CD3D.lymph_auc_p"])  # two slides: too few for a signed-rank test
    hm = pd.read_csv(fig / "truth_heatmaps.csv")
    assert sorted(hm["gene"].unique()) == ["CD3D", "reference"] and (hm["error"].isna()).all()
    # heatmap of the slide with the highest true CD3D (patient 0002 in the attrs) rendered from the real slide
    assert m["n_gene_heatmaps"] == 1
    assert (fig / "heatmap_CD3D_TCGA-AA-0002-01Z-00-DX1.png").stat().st_size > 10_000


def test_cv_null_gene_test_judges_the_method_with_a_null_and_names_the_fix_without_one(cohort, tmp_path: Path):
    params = _params(tmp_path, cohort["gmt"])
    params["evaluate_de"].update(gene_test="cv_null", heatmap_slides=0)
    null_path = tmp_path / "data/predictions/de/toy_cv_null.parquet"
    with pytest.raises(FileNotFoundError, match="null_shuffles > 0"):
        evaluate_de(section(EvaluateDEConfig, "evaluate_de", params), base(params))
    rng = np.random.default_rng(1)  # a wide null: only the planted genes' r (~0.95) lie beyond it
    pd.DataFrame([{"method": "summaries/rrr", "shuffle": b, "gene": g, "pearson_r": rng.uniform(-0.8, 0.8)}
                  for b in range(10) for g in PLANTED + NULL]).to_parquet(null_path, index=False)
    res = evaluate_de(section(EvaluateDEConfig, "evaluate_de", params), base(params))
    pg = res.per_gene.set_index("gene")
    assert (pg.loc[PLANTED, "cv_null_p"] == 1 / 161).all() and pg.loc[PLANTED, "significant"].all()
    assert not pg.loc[NULL, "significant"].any()
    assert res.metrics["n_genes_significant_bh"] == res.metrics["n_genes_significant_bh_cv_null"] == 8
    methods = pd.read_csv(tmp_path / "reports/figures/de/methods.csv").set_index("method")
    # the method without a null is judged by the pooled test, and its row says so
    assert methods["gene_test"].to_dict() == {"summaries/rrr": "cv_null", "paper/heads": "pooled"}
    assert methods.loc["summaries/rrr", "n_genes_significant_bh_cv_null"] == 8
    # over all genes: the top tenth (k = 2 of 16) of the planted r (~0.95) lies beyond every null run's (<= 0.8)
    assert res.metrics["cv_null_overall_top_k"] == 2 and res.metrics["cv_null_overall_top_p"] == pytest.approx(1 / 11)
    assert res.metrics["cv_null_overall_top_mean_r"] > 0.9 > 0.8 > res.metrics["cv_null_overall_top_null_mean_r"]
    assert methods.loc["summaries/rrr", "cv_null_overall_top_p"] == pytest.approx(1 / 11)
    assert np.isnan(methods.loc["paper/heads", "cv_null_overall_top_p"])  # no null, no overall test


def test_run_evaluate_de_writes_metrics_json_and_mlflow(cohort, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, cohort["gmt"])
    params["evaluate_de"].update(heatmap_slides=0, gene_sets=None)
    res = run_evaluate_de(params)
    on_disk = json.loads((tmp_path / "reports/metrics/de.json").read_text())
    assert on_disk["wilcoxon_p"] == pytest.approx(res.metrics["wilcoxon_p"])
    assert "enrichment.n_sets" not in on_disk and "n_gene_heatmaps" not in on_disk
    import mlflow

    from histcode import tracking

    tracking.client()  # the run was deferred: replayed first (what every MLflow reader of the project does)
    runs = mlflow.search_runs(experiment_names=["histcode/de"], output_format="list")
    assert len(runs) == 1 and runs[0].data.metrics["n_genes"] == 16
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id, "figures/de")}
    assert "figures/de/scatter.png" in arts
    # the run page opens on the result the console printed: headline paragraph, details as a bullet list
    note = runs[0].data.tags["mlflow.note.content"]
    head, _, details = note.partition("\n\n")
    assert head.startswith("differential expression (16 genes, ")
    assert f"Wilcoxon p={res.metrics['wilcoxon_p']:.3g}" in head
    assert details.startswith("- planted genes median r ") and "\n- per-gene heatmaps vs lymphocyte truth" in details


def test_lymphocyte_overlap_against_hand_computed_values():
    from scipy import stats
    from sklearn.metrics import roc_auc_score

    from histcode.evaluation.de_truth import lymphocyte_overlap

    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.2, 0.7, 0.6])
    dens = np.array([5000.0, 0.0, 0.0, 20000.0, 0.0, 1000.0, 2500.0])  # lymphocytes per mm²
    tumour = np.array([True, False, True, True, False, True, False])
    m = lymphocyte_overlap(scores, dens, top_k=2, min_density=2000, tumour=tumour)
    rich = dens >= 2000
    assert m["n_lymphocyte_tiles"] == 3 and m["chance"] == pytest.approx(3 / 7)
    assert m["top_k_precision"] == pytest.approx(0.5)  # tiles 0 (rich) and 2 (not)
    assert m["auc"] == pytest.approx(roc_auc_score(rich, scores))
    assert m["auc_tumour"] == pytest.approx(roc_auc_score(rich[tumour], scores[tumour]))
    assert m["enrichment"] == pytest.approx(np.mean([5000.0, 0.0]) / dens.mean())
    assert m["spearman"] == pytest.approx(stats.spearmanr(scores, dens).statistic)
    assert m["spearman_tumour"] == pytest.approx(stats.spearmanr(scores[tumour], dens[tumour]).statistic)
    strict = lymphocyte_overlap(scores, dens, top_k=2, min_density=10_000)
    assert strict["n_lymphocyte_tiles"] == 1 and strict["top_k_precision"] == 0.0
    empty = lymphocyte_overlap(scores, np.zeros(7), top_k=2, min_density=2000)  # no lymphocytes: nothing is rich
    assert empty["n_lymphocyte_tiles"] == 0 and np.isnan(empty["auc"]) and np.isnan(empty["spearman"])
    with pytest.raises(ValueError, match="one score per tile"):
        lymphocyte_overlap(scores, dens[:3], top_k=2, min_density=2000)


def test_signed_rank_p_matches_scipy():
    from scipy import stats

    from histcode.evaluation.de_truth import _signed_rank_p

    d = np.array([0.3, 0.2, -0.05, 0.4, 0.1, 0.25, 0.0])
    assert _signed_rank_p(d) == pytest.approx(stats.wilcoxon(d[d != 0], alternative="greater").pvalue)
    assert np.isnan(_signed_rank_p(np.array([0.1, 0.2])))


def test_gene_heatmaps_in_workers_are_the_files_drawn_here(cohort, tmp_path: Path):
    """evaluate_de renders the per-gene heatmaps in worker processes beside its statistics: the same index, in
    gene order, and the same PNGs byte for byte as one by one in this process; a gene whose slide is missing
    from the manifest is listed as failed, the others still render."""
    from histcode.evaluation.de_heatmaps import GeneHeatmaps, gene_dirs, patch_sizes

    root = cohort["data"] / "attention_genes/toy"
    shutil.copytree(root / "CD3D", root / "CD19")
    shutil.copytree(root / "CD3D", root / "MYC")
    dirs = gene_dirs(root)
    manifest = pd.read_csv(cohort["data"] / "manifests/toy/slides.csv")
    paths = dict(zip(manifest["slide_id"], manifest["path"], strict=True))
    paths.pop("TCGA-AA-0001-01Z-00-DX1")
    sizes = patch_sizes({sid: cohort["data"] / "tiles/toy" / f"{sid}.h5" for sid in manifest["slide_id"]})
    drawn = {}
    for workers in (2, 0):
        out = tmp_path / f"figures{workers}"
        out.mkdir()
        with GeneHeatmaps(dirs, paths, sizes, out, n=2, workers=workers) as heatmaps:
            index = heatmaps.collect()
        drawn[workers] = (index, {p.name: p.read_bytes() for p in out.iterdir()})
    pd.testing.assert_frame_equal(drawn[2][0], drawn[0][0])
    assert drawn[2][1] == drawn[0][1]
    index = drawn[0][0]
    assert index["gene"].tolist() == ["CD19", "CD19", "CD3D", "CD3D", "MYC", "MYC"]
    assert index["status"].tolist() == ["ok", "failed"] * 3 and "not in the slides manifest" in index["reason"][1]
    assert len(drawn[0][1]) == 6  # heatmap + top tiles of the one drawable slide, per gene
    with GeneHeatmaps({}, paths, sizes, tmp_path, n=2, workers=2) as heatmaps:
        assert heatmaps.collect() is None
