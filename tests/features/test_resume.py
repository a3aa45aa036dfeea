"""The extract stage on complete outputs: decided from the files without torch or MLflow, and redone whenever the
encoder, the settings or the tiles changed (``histcode.features.resume``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from histcode.features.stage import run_extract
from histcode.io.coords import read_coords, write_coords
from histcode.ssl.backbone import create_encoder, save_encoder

PARAMS = {
    "base": {"seed": 11, "train_cohort": "synth",
             "cohorts": {"synth": {"kind": "barcode", "source_dir": "slides", "slide_dir": "slides"}}},
    "extract": {"encoders": ["random", "mine"], "sources": {"mine": "enc"}, "input_px": 32, "batch_size": 4,
                "workers": 0, "threads": 1, "dtype": "float16", "bf16": False, "stain": False, "progress": False},
}
SRC = Path(__file__).resolve().parents[2] / "src"
# run the command as a user does; report which heavy modules it imported and what it printed
PROBE = """
import json, sys
from histcode.cli import main
try:
    main(["extract", "--cohort", "synth", "--params", "params.yaml"])
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps({m: m in sys.modules for m in ("torch", "mlflow", "great_expectations")}))
"""


def _save_mine(root: Path, seed: int) -> None:
    torch.manual_seed(seed)
    save_encoder(create_encoder("resnet18_trunc"), root / "enc", {"method": "adco"})


def _with(**extract: object) -> dict:
    return {**PARAMS, "extract": {**PARAMS["extract"], **extract}}


def _stamps(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((root / "data/features/synth").rglob("*.h5"))}


def test_complete_cohort_returns_without_torch_or_mlflow(synth_project: Path) -> None:
    _save_mine(synth_project, 1)
    first = run_extract(PARAMS, cohort="synth")
    assert (first["random/slides_done"], first["mine/slides_done"]) == (3, 3)
    (synth_project / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    before = _stamps(synth_project)
    report = synth_project / "reports/metrics/extract/synth.json"
    recorded = report.read_text()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=synth_project, env=env, capture_output=True, text=True,
                         check=True)
    imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert imported == {"torch": False, "mlflow": False, "great_expectations": False}, out.stdout + out.stderr
    assert "nothing to do" in out.stderr
    assert _stamps(synth_project) == before and report.read_text() == recorded  # outputs untouched

    report.unlink()  # `dvc repro --force` removes the stage's metrics before running it: written again, no MLflow
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=synth_project, env=env, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["mlflow"] is False
    again = json.loads(report.read_text())
    assert (again["random/slides_skipped"], again["mine/slides_skipped"], again["n_slides"]) == (3, 3, 3)
    assert again["mine/dim"] == first["mine/dim"]
    # the speed is the run's that embedded these files (a resumed run used to publish 0 tiles/s), and says so
    assert first["tiles"] > 0 and first["tiles_this_call"] == first["tiles"]
    for key in ("tiles", "seconds", "tiles_per_s", "embeddings_per_s"):
        assert again[key] == first[key], key
    assert again["tiles_this_call"] == 0


def test_speed_of_a_resumed_run_only_for_the_same_encoders(tmp_path: Path) -> None:
    from histcode.features import throughput

    stats = {"tiles": 120.0, "seconds": 2.0, "tiles_per_s": 60.0, "embeddings_per_s": 90.0}
    ids = {"adco": "f1", "random": "f2-sub64s1"}
    made = throughput.speed_metrics("c", ids, stats, 2.5, root=tmp_path)
    assert made == {**stats, "tiles_this_call": 120.0, "seconds_this_call": 2.5}
    resumed = throughput.speed_metrics("c", dict(reversed(ids.items())), {"tiles": 0.0}, 0.1, root=tmp_path)
    assert resumed == {**stats, "tiles_this_call": 0.0, "seconds_this_call": 0.1}
    other = throughput.speed_metrics("c", {**ids, "adco": "f3"}, {"tiles": 0.0}, 0.1, root=tmp_path)
    assert other["tiles_per_s"] == 0.0 and other["tiles"] == 0.0  # retrained weights: that speed is not theirs
    assert throughput.speed_metrics("other", ids, {"tiles": 0.0}, 0.1, root=tmp_path)["seconds"] == 0.0


def test_changed_encoder_settings_or_tiles_redo_the_work(synth_project: Path) -> None:
    _save_mine(synth_project, 1)
    run_extract(PARAMS, cohort="synth")
    assert run_extract(PARAMS, cohort="synth")["mine/slides_skipped"] == 3  # the fast path

    _save_mine(synth_project, 2)  # re-trained at the same path: new fingerprint
    m = run_extract(PARAMS, cohort="synth")
    assert (m["mine/slides_done"], m["random/slides_skipped"]) == (3, 3)

    m = run_extract(_with(input_px=48), cohort="synth")  # a setting that changes the numbers: every encoder
    assert (m["mine/slides_done"], m["random/slides_done"]) == (3, 3)
    m = run_extract(_with(input_px=48, batch_size=2, workers=1), cohort="synth")  # speed knobs only: nothing
    assert (m["mine/slides_skipped"], m["random/slides_skipped"]) == (3, 3)
    m = run_extract(_with(input_px=48, baseline_max_tiles=4), cohort="synth")  # the baselines' subsample
    assert (m["mine/slides_skipped"], m["random/slides_done"]) == (3, 3)

    coords_h5 = sorted((synth_project / "data/tiles/synth").glob("*.h5"))[0]
    coords, attrs = read_coords(coords_h5)
    write_coords(coords_h5, coords[:-1], {**attrs, "tile_config_digest": "retiled"})  # the tiles changed
    m = run_extract(_with(input_px=48, baseline_max_tiles=4), cohort="synth")
    assert (m["mine/slides_done"], m["mine/slides_skipped"], m["random/slides_done"]) == (1, 2, 1)


def test_old_feature_files_without_settings_are_redone(synth_project: Path) -> None:
    """Files of a version that did not record the settings cannot be trusted to match them."""
    import h5py

    params = _with(encoders=["random"])
    run_extract(params, cohort="synth")
    for f in (synth_project / "data/features/synth/random").glob("*.h5"):
        with h5py.File(f, "a") as fh:
            del fh.attrs["extract_settings"]
    assert run_extract(params, cohort="synth")["random/slides_done"] == 3


def test_the_same_weights_from_another_run_leave_the_features_folder_byte_identical(synth_project: Path) -> None:
    """A fresh clone's pretraining gives the same weights under a new MLflow run id in encoder.json; the folder's
    ``encoder_key.json`` used to digest that id, so the features folder (a DVC output) changed and every stage
    after extraction reran. The key now ignores the run id; anything else in encoder.json still counts."""
    import hashlib

    def folder() -> dict[str, str]:
        return {p.relative_to(synth_project).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((synth_project / "data/features/synth").rglob("*")) if p.is_file()}

    torch.manual_seed(1)
    enc = create_encoder("resnet18_trunc")
    save_encoder(enc, synth_project / "enc", {"method": "adco", "run_id": "aaaa"})
    run_extract(PARAMS, cohort="synth")
    before = folder()
    save_encoder(enc, synth_project / "enc", {"method": "adco", "run_id": "bbbb"})  # same weights, another run
    m = run_extract(PARAMS, cohort="synth")
    assert (m["mine/slides_skipped"], m["random/slides_skipped"]) == (3, 3) and folder() == before
    save_encoder(enc, synth_project / "enc", {"method": "simclr", "run_id": "bbbb"})  # content changed: a new key
    run_extract(PARAMS, cohort="synth")
    assert folder() != before
