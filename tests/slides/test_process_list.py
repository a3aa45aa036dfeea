"""process_list.csv: the csv-module writer keeps pandas' bytes, merges shards, and the metrics read it back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from histcode.slides.job import SlideResult
from histcode.slides.process_list import PROCESS_LIST_COLUMNS, cohort_metrics, update_process_list

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
    m = cohort_metrics(path)
    assert m == {"n_slides": 2, "n_done": 1, "n_failed": 1, "n_tiles": 229, "tiles_per_slide_mean": 229.0,
                 "tiles_per_slide_min": 229, "tiles_per_slide_max": 229, "tissue_area_mm2": 3.60096}
