"""The external workflow's inputs: tiles are reused only while they match the current settings and code."""

from __future__ import annotations

from pathlib import Path

import pytest

from histcode.io.coords import read_coords
from histcode.paths import Paths

ROOT = Path(__file__).resolve().parents[2]
CMU1 = ROOT / "tests" / "data" / "CMU-1-Small-Region.svs"


def test_external_tiles_follow_the_current_tiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  manifest_writer) -> None:
    """``make eval-cptac`` on a cohort tiled before a change of ``tile`` settings (or of the tiling code) tiles
    it again instead of scoring the old tiles; on tiles that are current it changes nothing."""
    from histcode.evaluation.champion_external import _tile
    from histcode.slides import job

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    manifests = tmp_path / "data" / "manifests" / "ext"
    manifests.mkdir(parents=True)
    manifest_writer(manifests / "slides.csv", [("cmu1", CMU1, "")])
    params = {"base": {"seed": 7, "train_cohort": "ext", "cohorts": {
        "ext": {"kind": "barcode", "source_dir": "src", "slide_dir": "src"}}}, "tile": {"workers": 0}}
    paths = Paths()
    h5 = paths.tiles("ext") / "cmu1.h5"
    _tile(params, "ext")
    coords, attrs = read_coords(h5)
    stamp = h5.stat().st_mtime_ns
    _tile(params, "ext")  # current: untouched
    assert h5.stat().st_mtime_ns == stamp
    params["tile"]["tissue_threshold"] = 0.25  # other settings: tiled again, more tiles at the lower threshold
    _tile(params, "ext")
    again, new_attrs = read_coords(h5)
    assert new_attrs["tile_config_digest"] != attrs["tile_config_digest"] and len(again) > len(coords)
    stamp = h5.stat().st_mtime_ns
    monkeypatch.setattr(job, "code_fingerprint", lambda: "edited-mask-code")  # other tiling code: again
    _tile(params, "ext")
    assert h5.stat().st_mtime_ns != stamp


def test_dvc_features_of_older_tiles_are_not_reused(tmp_path: Path) -> None:
    """The DVC features of a cohort are reused by the external workflow only while they describe its current
    tiles (each file records its coords' tile digest and count); after tiles were made again they are not."""
    import numpy as np

    from histcode.evaluation.champion_external import _of_current_tiles
    from histcode.io.coords import write_coords
    from histcode.io.features import write_features

    tiles, feats = tmp_path / "tiles", tmp_path / "features"
    tiles.mkdir()
    coords = np.array([[0, 0], [256, 0], [0, 256]], np.int32)
    write_coords(tiles / "s1.h5", coords, {"patch_size": 256, "patch_level": 0, "downsample": [1.0, 1.0],
                                                "level_dim": [512, 512], "target_mpp": 0.5, "tile_px": 256,
                                                "slide_mpp": 0.5, "tile_config_digest": "aaaa"})

    def features(digest: str, n: int) -> None:
        write_features(feats / "s1.h5", np.zeros((n, 4), np.float32), coords[:n],
                       {"encoder": "adco", "encoder_uri": "models:/histcode-encoder/1", "dim": 4, "tile_px": 128,
                        "target_mpp": 0.5, "tile_config_digest": digest, "n_tiles_slide": n})

    features("aaaa", 3)
    assert _of_current_tiles(feats, tiles)
    features("bbbb", 3)  # made from tiles of other settings or code
    assert not _of_current_tiles(feats, tiles)
    features("aaaa", 2)  # a different tile set under the same digest
    assert not _of_current_tiles(feats, tiles)
    (feats / "s1.h5").unlink()  # a slide tiled since (none before): not reusable
    assert not _of_current_tiles(feats, tiles)
