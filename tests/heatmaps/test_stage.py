"""The heatmaps stage on a tiny synthetic-style cohort: figures, index, GeoJSON and attention vs truth."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from histcode.io.coords import write_coords

from .conftest import PATCH, grid_coords, truth_mask, write_slide

SLIDES = ["TCGA-AA-0001-01Z-00-DX1", "TCGA-AA-0002-01Z-00-DX1", "TCGA-AA-0002-11Z-00-DX1"]


def _attention(path: Path, coords: np.ndarray, raw: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["coords"] = coords
        f["attention_raw"] = raw.astype(np.float32)
        a = np.exp(raw - raw.max())
        f["attention"] = (a / a.sum()).astype(np.float32)


def test_heatmaps_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_mlflow) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    fresh_mlflow(tmp_path, monkeypatch)
    coords = grid_coords()
    tumour_side = coords[:, 0] < 1024
    rows, preds = [], []
    for i, sid in enumerate(SLIDES):
        label = int("-01Z" in sid)
        path = write_slide(tmp_path / "slides" / f"{sid}.tiff") if i < 2 else tmp_path / "slides/missing.tiff"
        rows.append(
            {
                "slide_id": sid,
                "path": str(path),
                "patient_id": sid[:12],
                "cohort": "toy",
                "sample_type": "",
                "label": label,
                "mpp": 0.5,
            }
        )
        preds.append(
            {
                "slide_id": sid,
                "patient_id": sid[:12],
                "fold": 0,
                "split": "test",
                "label": label,
                "prob_tumor": [0.9, 0.95, 0.1][i],
                "pooling": "gated_attention",
            }
        )
        write_coords(
            tmp_path / f"data/tiles/toy/{sid}.h5",
            coords,
            {
                "patch_size": PATCH,
                "patch_level": 0,
                "downsample": [1, 1],
                "level_dim": [2048, 1536],
                "target_mpp": 0.5,
                "tile_px": 256,
                "slide_mpp": 0.5,
            },
        )
        good = np.where(tumour_side, 4.0, -4.0) + np.arange(len(coords)) * 0.01
        _attention(
            tmp_path / f"data/attention/toy/gated_attention/{sid}.h5", coords, good if i == 0 else -good
        )
        _attention(tmp_path / f"data/attention/toy/mean/{sid}.h5", coords, np.zeros(len(coords)))
    # slide 2 has its tumour on the right: attention that points right is correct there
    Path("data/manifests/toy").mkdir(parents=True)
    pd.DataFrame(rows).to_csv("data/manifests/toy/slides.csv", index=False)
    Path("data/predictions/mil").mkdir(parents=True)
    pd.DataFrame(preds).to_csv("data/predictions/mil/toy.csv", index=False)

    from histcode.heatmaps import attention_truth  # the truth readers it uses, on hand-made masks

    def read_region_mask(gt: Path, cohort: str, sid: str) -> tuple[np.ndarray, float]:
        return (truth_mask() if sid.endswith("1-01Z-00-DX1") else truth_mask()[:, ::-1].copy()), 16.0

    monkeypatch.setattr(attention_truth, "region_codes", lambda: {"background": 0, "normal_epithelium": 2, "tumour": 3})
    monkeypatch.setattr(attention_truth, "read_region_mask", read_region_mask)
    monkeypatch.setattr(attention_truth, "read_tumour_bed",
                        lambda gt, cohort, sid: (read_region_mask(gt, cohort, sid)[0] == 3, 16.0))

    params = {
        "base": {
            "seed": 0,
            "train_cohort": "toy",
            "cohorts": {"toy": {"kind": "gdc", "source_dir": "x", "slide_dir": "x", "synthetic": True}},
        },
        "mil": {"pooling": "gated_attention"},
        "heatmaps": {
            "slides": 3,
            "truth_top_k": 5,
            "thumb_max_px": 256,
            "gallery_tiles": 4,
            "gallery_px": 64,
        },
    }
    Path("params.yaml").write_text(yaml.safe_dump(params))
    from histcode.heatmaps.stage import run_heatmaps

    metrics = run_heatmaps("params.yaml", progress=False)
    index = pd.read_csv("reports/figures/heatmaps/index.csv")
    assert index["slide_id"].tolist() == SLIDES[1::-1]  # tumour slides by P(tumour), normal one not drawn
    assert index["status"].tolist() == ["ok", "ok"]
    for sid in SLIDES[:2]:
        d = Path("reports/figures/heatmaps") / sid
        assert {p.name for p in d.iterdir()} == {
            "heatmap.png",
            "top_tiles.png",
            "bottom_tiles.png",
            "tiles.geojson",
        }
        gj = json.loads((d / "tiles.geojson").read_text())
        assert len(gj["features"]) == len(coords)
        assert set(gj["features"][0]["properties"]["measurements"]) == {
            "attention", "attention_raw", "attention_percentile", "heatmap"
        }
    assert metrics["gated_attention.mean_top_k_precision"] == 1.0
    assert metrics["gated_attention.mean_iou"] == 1.0 and metrics["gated_attention.mean_iou_cells"] == 1.0
    assert metrics["mean.mean_top_k_precision"] == 0.5  # uniform attention = chance (tumour share)
    assert json.loads(Path("reports/metrics/mil_attention.json").read_text()) == metrics
    assert metrics["truth_evaluated"] == 1
    assert metrics["gated_attention.mean_auc"] == 1.0 and metrics["mean.mean_auc"] == 0.5
    settings = json.loads(Path("reports/figures/heatmaps/attention_truth_settings.json").read_text())
    assert (settings["scale"], settings["smooth_tiles"], settings["threshold"]) == ("raw", 0.0, "otsu")
    # the heatmap run carries every picture and the QuPath GeoJSON as artifacts (MLflow UI: one place to look)

    from histcode import tracking

    client = tracking.client()  # the run was deferred: replayed first
    exp = client.get_experiment_by_name("histcode/mil")
    (run,) = client.search_runs([exp.experiment_id], filter_string="tags.`histcode.stage` = 'heatmaps'")
    logged = {f.path for f in client.list_artifacts(run.info.run_id, f"heatmaps/{SLIDES[0]}")}
    assert logged == {f"heatmaps/{SLIDES[0]}/{n}" for n in ("heatmap.png", "top_tiles.png", "bottom_tiles.png",
                                                            "tiles.geojson")}

    # rendered in this process (workers: 0) the figures are the same files, byte for byte
    drawn = {p: p.read_bytes() for p in Path("reports/figures/heatmaps").rglob("*") if p.is_file()}
    params["heatmaps"]["workers"] = 0
    Path("params.yaml").write_text(yaml.safe_dump(params))
    assert run_heatmaps("params.yaml", progress=False) == metrics
    assert {p: p.read_bytes() for p in Path("reports/figures/heatmaps").rglob("*") if p.is_file()} == drawn

    # a listed slide whose file is missing is reported, the others still render
    params["heatmaps"]["workers"] = 2
    params["heatmaps"]["slides"] = [SLIDES[2], SLIDES[0]]
    Path("params.yaml").write_text(yaml.safe_dump(params))
    run_heatmaps("params.yaml", progress=False)
    index = pd.read_csv("reports/figures/heatmaps/index.csv")
    assert index["status"].tolist() == ["failed", "ok"] and "not found" in index["reason"][0]
