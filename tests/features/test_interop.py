"""Feature files other tools read and write: TRIDENT coords attrs on ours, TRIDENT/CLAM folders imported as
feature sets that MIL and DE train on directly, seeded baseline subsamples, a local UNI weight file end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from histcode.features.foundation import build_trunk, tiny_variant
from histcode.features.resume import file_digest
from histcode.features.stage import run_extract
from histcode.io.coords import read_coords
from histcode.io.features import read_coords_attrs, read_features, read_foreign_features
from histcode.slides.reader import SlideReader

from .test_extract import PARAMS, _slide_ids

DATA = Path(__file__).parents[1] / "data"


def _params(**extract: object) -> dict:
    return {**PARAMS, "extract": {**PARAMS["extract"], **extract}}


def write_trident(folder: Path, name: str, feats: np.ndarray, coords: np.ndarray, *, level0: int = 512,
                  mag0: float = 40.0) -> None:
    """One slide as TRIDENT's WSI.extract_patch_features saves it (features_<encoder>/<slide name>.h5)."""
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / f"{name}.h5", "w") as fh:
        fh.create_dataset("features", data=feats.astype(np.float32))
        fh.create_dataset("coords", data=coords.astype(np.int64))
        fh["features"].attrs.update({"name": name, "savetodir": str(folder)})
        fh["coords"].attrs.update({"patch_size": 256, "patch_size_level0": level0, "level0_magnification": mag0,
                                   "target_magnification": 20, "overlap": 0, "name": name,
                                   "savetodir": str(folder.parent)})


def to_trident(features_dir: Path, folder: Path) -> None:
    """Move a HistCode feature set into TRIDENT's layout (and delete ours): what a TRIDENT user has."""
    for h5 in sorted(features_dir.glob("*.h5")):
        with h5py.File(h5, "r") as fh:
            write_trident(folder, h5.stem, fh["features"][()].astype(np.float32), fh["coords"][()])
    shutil.rmtree(features_dir)


def test_extracted_files_carry_trident_coords_attrs_and_baselines_subsample(synth_project: Path) -> None:
    run_extract(_params(encoders=["random"]), cohort="synth")
    sid = _slide_ids(synth_project)[0]
    f = synth_project / f"data/features/synth/random/{sid}.h5"
    full, coords, _ = read_features(f)
    _, tile_attrs = read_coords(synth_project / f"data/tiles/synth/{sid}.h5")
    ca = read_coords_attrs(f)
    assert ca["patch_size_level0"] == tile_attrs["patch_size"] and ca["patch_size"] == 256
    assert ca["target_magnification"] == 20 and ca["name"] == sid and ca["overlap"] == 0
    assert ca["level0_magnification"] == pytest.approx(10 / tile_attrs["slide_mpp"], abs=1e-3)
    metrics = run_extract(_params(encoders=["random"], baseline_max_tiles=4), cohort="synth")
    assert metrics["random/slides_done"] == 3  # a different subsample is not "finished": re-embedded
    sub, sub_coords, attrs = read_features(f)
    assert sub.shape == (4, 256) and attrs["n_tiles_slide"] == 9 and attrs["subsample_max_tiles"] == 4
    rows = [int(np.flatnonzero((coords == c).all(1))[0]) for c in sub_coords]
    assert rows == sorted(set(rows))  # a subset, in tile order
    np.testing.assert_allclose(sub.astype(np.float32), full[rows].astype(np.float32), rtol=2e-2, atol=2e-3)
    again = run_extract(_params(encoders=["random"], baseline_max_tiles=4), cohort="synth")
    assert again["random/slides_skipped"] == 3 and np.array_equal(read_features(f)[1], sub_coords)


def test_uni_with_a_local_weight_file_runs_end_to_end(synth_project: Path) -> None:
    """``extract.encoders: [random, <uni family>]`` with a local weight file in UNI's state-dict layout."""
    spec = tiny_variant("uni")
    torch.manual_seed(3)
    weights = synth_project / "uni_weights.bin"
    torch.save(build_trunk(spec).state_dict(), weights)
    metrics = run_extract(_params(encoders=["random", spec.name], sources={spec.name: str(weights)}), cohort="synth")
    assert metrics[f"{spec.name}/slides_done"] == 3 and metrics["random/slides_done"] == 3
    sid = _slide_ids(synth_project)[0]
    feats, coords, attrs = read_features(synth_project / f"data/features/synth/{spec.name}/{sid}.h5")
    assert feats.shape == (9, spec.dim) and attrs["encoder_fingerprint"] == file_digest(weights)
    assert str(weights.resolve()) in attrs["encoder_uri"] and attrs["input_px"] == 224
    enc = build_trunk(spec)
    enc.load_state_dict(torch.load(weights, weights_only=True))
    from histcode.features.foundation import FoundationEncoder

    enc = FoundationEncoder(enc, spec).eval()
    _, tile_attrs = read_coords(synth_project / f"data/tiles/synth/{sid}.h5")
    slide = next(p for p in (synth_project / "slides").iterdir() if p.name.startswith(sid))
    with SlideReader(slide) as r:
        x = np.stack([r.read_tile(int(a), int(b), tile_attrs["patch_size"], 224) for a, b in coords[:3]])
    with torch.no_grad():
        ref = enc(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()
    np.testing.assert_allclose(feats[:3].astype(np.float32), ref, rtol=2e-2, atol=5e-3)
    import mlflow

    from histcode import tracking

    tracking.client()  # the run was deferred: replayed first (what every MLflow reader of the project does)
    runs = mlflow.search_runs(experiment_names=["histcode/extract"], order_by=["start_time DESC"])
    assert runs.iloc[0][f"params.encoder.{spec.name}.fingerprint"] == file_digest(weights)


def test_uni_without_weights_is_a_one_line_cli_error(synth_project: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from histcode.cli import run_stage

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(synth_project / "hf"))
    (synth_project / "params.yaml").write_text(yaml.safe_dump(_params(encoders=["adco", "uni"])))
    with pytest.raises(SystemExit) as exc:  # the extract stage's own face: pipelines/extract.py = histcode extract
        run_stage("extract", ["--cohort", "synth", "--encoder", "uni", "--no-progress"])
    assert exc.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("extract: error: ")]
    assert len(lines) == 1 and "UNI (MahmoodLab/UNI" in lines[0] and "huggingface.co/MahmoodLab/UNI" in lines[0]


def test_clam_pt_and_h5_files_read_with_their_coords() -> None:
    clam = DATA / "clam_TCGA-63-7022-01A-01-BS1.h5"
    with h5py.File(clam, "r") as fh:
        coords = fh["coords"][()]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pt_files").mkdir()
        (root / "patches").mkdir()
        feats = torch.randn(len(coords), 8)
        torch.save(feats, root / "pt_files" / "TCGA-63-7022.pt")
        shutil.copy(clam, root / "patches" / "TCGA-63-7022.h5")
        f, c, attrs = read_foreign_features(root / "pt_files" / "TCGA-63-7022.pt")
        assert attrs["format"] == "clam_pt" and attrs["patch_size_level0"] == 256 and c.shape == (7822, 2)
        np.testing.assert_array_equal(c, coords)
        np.testing.assert_allclose(f, feats.numpy())
        (root / "patches" / "TCGA-63-7022.h5").unlink()
        with pytest.raises(ValueError, match=r"carry no coords; put the matching h5_files/TCGA-63-7022\.h5"):
            read_foreign_features(root / "pt_files" / "TCGA-63-7022.pt")


def _import(root: Path, cohort: str, folder: Path, name: str = "uni_trident") -> dict:
    params = {"base": {"seed": 1, "train_cohort": cohort,
                       "cohorts": {cohort: {"kind": "gdc", "source_dir": "x", "slide_dir": "x"}},
                       "data_dir": str(root / "data"), "reports_dir": str(root / "reports")},
              "extract": {"encoders": [name], "sources": {name: str(folder)}, "stain": False, "progress": False}}
    return run_extract(params, cohort=cohort)


def test_trident_folder_trains_mil_directly(tmp_path: Path, fresh_mlflow, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.mil.conftest import make_cohort
    from tests.mil.test_stage import MIL

    monkeypatch.chdir(tmp_path)
    fresh_mlflow(tmp_path, monkeypatch)
    manifest, fdir = make_cohort(tmp_path, n_patients=12, cohort="toy")
    to_trident(fdir, tmp_path / "trident_job" / "20x_256px_0px_overlap" / "features_uni_v1")
    metrics = _import(tmp_path, "toy", tmp_path / "trident_job" / "20x_256px_0px_overlap" / "features_uni_v1")
    assert metrics["uni_trident/slides_done"] == len(manifest)
    sid = manifest["slide_id"][0]
    _, _, attrs = read_features(tmp_path / f"data/features/toy/uni_trident/{sid}.h5")
    assert attrs["source_format"] == "trident" and attrs["patch_size"] == 512 and attrs["target_mpp"] == 0.5
    params = {"base": {"seed": 1, "train_cohort": "toy",
                       "cohorts": {"toy": {"kind": "gdc", "source_dir": "x", "slide_dir": "x", "role": "train"}}},
              "extract": {"encoders": ["uni_trident"]}, "mil": {**MIL, "encoder": "uni_trident", "n_folds": 2,
                                                                 "max_epochs": 3, "bootstrap": 20}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    from histcode.mil.stage import run_train_mil

    run_train_mil("params.yaml")
    pred = pd.read_csv(tmp_path / "data/predictions/mil/toy.csv")
    assert set(pred["slide_id"]) == set(manifest["slide_id"]) and pred["prob_tumor"].between(0, 1).all()
    assert (tmp_path / "data/attention/toy/gated_attention" / f"{sid}.h5").exists()
    import mlflow

    version = mlflow.MlflowClient().get_model_version_by_alias("histcode-mil", "challenger")
    assert version.tags["encoder"] == "uni_trident" and version.tags["encoder_fingerprint"] == attrs[
        "encoder_fingerprint"] and attrs["encoder_fingerprint"].startswith("import:")


def test_trident_folder_trains_de_directly(tmp_path: Path) -> None:
    from histcode.config import base, section
    from histcode.genes.config import DEConfig
    from histcode.genes.run import train_de
    from tests.genes.conftest import params_dict, write_cohort

    toy = write_cohort(tmp_path, n_patients=16)
    to_trident(tmp_path / "data/features/toy/adco", tmp_path / "trident" / "features_uni_v1")
    metrics = _import(tmp_path, "toy", tmp_path / "trident" / "features_uni_v1")
    assert metrics["uni_trident/slides_done"] == 16 and metrics["uni_trident/slides_failed"] == 16  # normals
    params = params_dict(tmp_path, encoder="uni_trident", epochs=30, mil_epochs=1, n_folds=2)
    result = train_de(section(DEConfig, "de", params), base(params))
    pred = pd.read_parquet(tmp_path / "data/predictions/de/toy.parquet")
    assert set(pred["patient_id"]) == set(toy["patients"]) and result.metrics["n_patients"] == 16
