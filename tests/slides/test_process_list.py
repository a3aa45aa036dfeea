"""process_list.csv: the csv-module writer keeps pandas' bytes, merges shards, and the metrics read it back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from histcode.slides.job import SlideResult
from histcode.slides.process_list import (
    PROCESS_LIST_COLUMNS,
    cohort_metrics,
    damaged_slides,
    read_process_list,
    update_process_list,
    upsampled_slides,
)

DONE = SlideResult(slide="b", status="done", n_tiles=229, mpp=0.5, mpp_source="openslide.mpp", tile_size_level0=256,
                   tissue_area_mm2=3.60096)
FAILED = SlideResult(slide="a", status="failed", n_tiles=0,
                     reason='a.svs: not a slide, "truncated", re-download it')
DONE2 = SlideResult(slide="c", status="done", n_tiles=12, mpp=0.25, mpp_source="manifest", tile_size_level0=512,
                    tissue_area_mm2=0.1 + 0.2)


def test_bytes_match_what_pandas_wrote(tmp_path: Path) -> None:
    """The file the pandas writer made before (same results, all done) is byte for byte what is written now, so
    DVC sees no change in an unchanged cohort; quoting of a reason with commas and quotes stays CSV-correct."""
    path = tmp_path / "process_list.csv"
    update_process_list(path, [DONE2.row(), DONE.row()], {"b", "c"}, shared=False)
    ref = tmp_path / "ref.csv"
    pd.DataFrame([DONE.row(), DONE2.row()], columns=PROCESS_LIST_COLUMNS).to_csv(ref, index=False)
    assert path.read_bytes() == ref.read_bytes()
    update_process_list(path, [FAILED.row()], {"a", "b", "c"}, shared=True)
    back = pd.read_csv(path, keep_default_na=False)
    assert back["slide"].tolist() == ["a", "b", "c"]  # merged and sorted
    assert back.loc[0, "reason"] == FAILED.reason and back.loc[0, "mpp"] == ""


def test_merge_drops_slides_no_longer_in_the_manifest_and_metrics(tmp_path: Path) -> None:
    path = tmp_path / "process_list.csv"
    update_process_list(path, [DONE.row(), DONE2.row()], {"b", "c"}, shared=False)
    update_process_list(path, [FAILED.row()], {"a", "b"}, shared=False)  # c left the manifest
    m = cohort_metrics(path, 256)
    assert m == {"n_slides": 2, "n_done": 1, "n_failed": 1, "n_tiles": 229, "tiles_per_slide_mean": 229.0,
                 "tiles_per_slide_min": 229, "tiles_per_slide_max": 229, "tissue_area_mm2": 3.60096,
                 "n_upsampled": 0, "n_damaged": 0}


def test_slides_scanned_coarser_than_the_target_are_flagged(tmp_path: Path) -> None:
    """256 px tiles at 0.5 µm/px: a 10x scan (1 µm/px, 128 level-0 px a tile) is enlarged 2x and flagged; a
    0.55 µm/px scanner (233 px, 1.1x) and a 40x scan (512 px) are not; a failed slide is not counted."""
    path = tmp_path / "process_list.csv"
    rows = [DONE.row(), DONE2.row(), FAILED.row(),
            SlideResult(slide="d", status="done", n_tiles=5, mpp=1.0, tile_size_level0=128).row(),
            SlideResult(slide="e", status="done", n_tiles=5, mpp=0.55, tile_size_level0=233).row()]
    update_process_list(path, rows, {"a", "b", "c", "d", "e"}, shared=False)
    assert upsampled_slides(read_process_list(path), 256) == {"d": 2.0}
    assert cohort_metrics(path, 256)["n_upsampled"] == 1
    assert cohort_metrics(path, 512)["n_upsampled"] == 3  # 512 px tiles: b (256 px) and e (233 px) join d


def test_damaged_slides_are_counted(tmp_path: Path) -> None:
    """A done slide whose reason is a damage note counts in ``n_damaged``; a failed slide's reason does not."""
    path = tmp_path / "process_list.csv"
    bad = SlideResult(slide="d", status="done", n_tiles=5, reason="damaged: 1 region(s) unreadable ...", mpp=0.5,
                      tile_size_level0=256)
    update_process_list(path, [DONE.row(), FAILED.row(), bad.row()], {"a", "b", "d"}, shared=False)
    assert damaged_slides(read_process_list(path)) == {"d": bad.reason}
    assert cohort_metrics(path, 256)["n_damaged"] == 1
