"""Cohort tiling on real slides: tile placement, bad input, resume, kill-and-rerun, shards, crashes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from histcode.io.coords import read_coords
from histcode.slides.config import TileConfig
from histcode.slides.contact_sheet import _picture, read_entries
from histcode.slides.grid import grid_coords
from histcode.slides.reader import SlideReader
from histcode.slides.stage import warn_damaged
from histcode.slides.tiling import SlideJob, parse_shard, run_jobs, tile_cohort

DATA = Path(__file__).resolve().parents[1] / "data"
CMU1 = DATA / "CMU-1-Small-Region.svs"
DICOM = DATA / "slidetool_test_dicom.dcm"
CMU1_TILES = 36  # regions model (fat texture kept), 4 of them partial tiles at the bottom border (edge_tiles)
CFG = TileConfig()


def _stained(tile: np.ndarray) -> float:
    """Independent tissue measure: fraction of pixels with HSV saturation > 25."""
    return float((cv2.cvtColor(tile, cv2.COLOR_RGB2HSV)[..., 1] > 25).mean())


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_real_slides_tile_only_on_tissue(tmp_path: Path, manifest_writer) -> None:
    csv = manifest_writer(tmp_path / "slides.csv", [("cmu1", CMU1, ""), ("dicom", DICOM, "")])
    res = {r.slide: r for r in tile_cohort(csv, tmp_path / "out", CFG, workers=0, progress=False)}
    assert res["cmu1"].status == "done" and res["cmu1"].n_tiles == CMU1_TILES
    coords, attrs = read_coords(tmp_path / "out" / "cmu1.h5")
    assert attrs["patch_size"] == 256 and attrs["slide_mpp"] == pytest.approx(0.499)
    assert attrs["level_dim"] == [2220, 2967] and attrs["target_mpp"] == 0.5 and attrs["tile_px"] == 256
    kept = {tuple(c) for c in coords.tolist()}
    with SlideReader(CMU1) as s:
        for x, y in grid_coords(2220, 2967, 256).tolist():
            stained = _stained(s.read_tile(x, y, 256, 256))
            if (x, y) in kept:
                assert stained >= 0.5, (x, y, stained)  # tiles only where tissue is
            else:
                assert stained < 0.8, (x, y, stained)  # no clearly tissue tile is missed
    d_coords, d_attrs = read_coords(tmp_path / "out" / "dicom.h5")
    assert res["dicom"].status == "done" and d_attrs["patch_size"] == 64  # 2.004 µm/px, snapped to 4x
    with SlideReader(DICOM) as s:  # the part of a border tile inside the slide (edge_tiles; read padded white)
        fr = [_stained(s.read_tile(x, y, 64, 256)[: min(256, 4 * (2459 - y)), : min(256, 4 * (1000 - x))])
              for x, y in d_coords[::10].tolist()]
    # a pale, blurred scan: the regions model also keeps its blurred, faintly textured rim (read as fat), so
    # a few edge tiles are nearly unstained (19 % of the sample; the otsu_od mask had none)
    assert np.median(fr) >= 0.6 and np.mean(np.array(fr) < 0.1) <= 0.2 and len(d_coords) > 100
    png = cv2.imread(str(tmp_path / "out" / "masks" / "cmu1.png"))
    assert png is not None and max(png.shape[:2]) >= 512


def test_bad_slides_recorded_rest_completes(tmp_path: Path, manifest_writer, truncated_slide: Path,
                                            corrupt_slide: Path, blank_slide: Path, no_mpp_slide: Path) -> None:
    junk = tmp_path / "notes.svs"
    junk.write_text("not a slide\n")
    rows = [("a_truncated", truncated_slide, ""), ("b_junk", junk, ""), ("c_blank", blank_slide, ""),
            ("d_nompp", no_mpp_slide, ""), ("e_corrupt", corrupt_slide, ""), ("f_missing", tmp_path / "x.svs", ""),
            ("g_cmu1", CMU1, "")]
    csv = manifest_writer(tmp_path / "slides.csv", rows)
    results = tile_cohort(csv, tmp_path / "out", CFG, workers=2, progress=False)  # the planner keeps it in-process
    plist = pd.read_csv(tmp_path / "out" / "process_list.csv", keep_default_na=False)
    assert list(plist.columns[:4]) == ["slide", "status", "n_tiles", "reason"]
    assert plist["slide"].tolist() == [r[0] for r in rows] == [r.slide for r in results]
    reason = dict(zip(plist["slide"], plist["reason"], strict=True))
    status = dict(zip(plist["slide"], plist["status"], strict=True))
    assert status == {**{r[0]: "failed" for r in rows}, "g_cmu1": "done"}
    assert "corrupt or truncated" in reason["a_truncated"]
    assert "not a slide format" in reason["b_junk"]
    assert "no tissue found" in reason["c_blank"] and "blank.tif" in reason["c_blank"]
    assert "resolution unknown" in reason["d_nompp"] and "'mpp' column" in reason["d_nompp"]
    assert "corrupt" in reason["e_corrupt"] and "corrupt.svs" in reason["e_corrupt"]
    assert "not found" in reason["f_missing"]
    assert int(plist.loc[plist["slide"] == "g_cmu1", "n_tiles"].iloc[0]) == CMU1_TILES
    assert not (tmp_path / "out" / "d_nompp.h5").exists()


def test_missing_mpp_fixed_by_manifest_or_default(tmp_path: Path, manifest_writer, no_mpp_slide: Path) -> None:
    csv = manifest_writer(tmp_path / "slides.csv", [("m", no_mpp_slide, "0.5"), ("d", no_mpp_slide, "")])
    small = TileConfig(tile_px=64, seg_downsample=16)  # the fixture is only 1024x768 px
    res = {r.slide: r for r in tile_cohort(csv, tmp_path / "out", small, workers=0, progress=False,
                                           default_mpp=0.25)}
    assert (res["m"].status, res["m"].mpp_source, res["m"].tile_size_level0) == ("done", "manifest", 64)
    assert (res["d"].status, res["d"].mpp_source, res["d"].tile_size_level0) == ("done", "default_mpp", 128)


def test_resume_skips_complete_and_redoes_on_config_change(tmp_path: Path, manifest_writer) -> None:
    csv = manifest_writer(tmp_path / "slides.csv", [("cmu1", CMU1, "")])
    out = tmp_path / "out"
    tile_cohort(csv, out, CFG, workers=0, progress=False)
    h5 = out / "cmu1.h5"
    stamp = h5.stat().st_mtime_ns
    again = tile_cohort(csv, out, CFG, workers=0, progress=False)
    assert h5.stat().st_mtime_ns == stamp and again[0].n_tiles == CMU1_TILES and again[0].seconds == 0.0
    loose = TileConfig(tissue_threshold=0.1)
    changed = tile_cohort(csv, out, loose, workers=0, progress=False)
    assert h5.stat().st_mtime_ns != stamp and changed[0].n_tiles > CMU1_TILES


def test_resume_redoes_slides_tiled_by_other_code(tmp_path: Path, manifest_writer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest covers the tiling code, not only the settings: after an edit to the tissue model a rerun
    (``dvc repro``) tiles every slide again instead of resuming from coords the old code made."""
    from histcode.slides import job

    csv = manifest_writer(tmp_path / "slides.csv", [("cmu1", CMU1, "")])
    out = tmp_path / "out"
    tile_cohort(csv, out, CFG, workers=0, progress=False)
    stamp = (out / "cmu1.h5").stat().st_mtime_ns
    assert len(job.code_fingerprint()) == 16
    monkeypatch.setattr(job, "code_fingerprint", lambda: "edited-mask-code")
    again = tile_cohort(csv, out, CFG, workers=0, progress=False)
    assert (out / "cmu1.h5").stat().st_mtime_ns != stamp and again[0].seconds > 0
    assert read_coords(out / "cmu1.h5")[1]["tile_config_digest"] == job.config_digest(CFG)



def test_code_fingerprint_covers_the_code_that_shapes_tiles_only() -> None:
    """The fingerprint follows the tiling imports: the tissue model, grid, reader and QC render are in it (an
    edit re-tiles), the tile dataset, stage and CLI are not (an edit there must not rerun the whole demo)."""
    from histcode.slides import job

    names = {p.name for p in job.tiling_modules()}
    assert {"job.py", "mask.py", "adipose.py", "grid.py", "reader.py", "render.py", "config.py"} <= names
    assert not names & {"tile_dataset.py", "cohort_tiles.py", "stage.py", "commands.py", "tiling.py",
                        "process_list.py", "reference.py"}

def test_code_fingerprint_follows_the_code_not_its_prose(tmp_path: Path) -> None:
    """An edit to docstrings, comments or layout keeps the fingerprint (a cohort is not re-tiled for a reworded
    docstring); an edit to what the code does, down to one constant, changes it."""
    from histcode.slides import job

    src = tmp_path / "mask.py"
    code = '"""Tissue mask."""\n\nTHRESHOLD = 0.5\n\n\ndef keep(x):\n    """Why."""\n    return x > THRESHOLD\n'
    src.write_text(code)
    base = job.fingerprint_modules([src])
    src.write_text('"""Tissue mask, reworded."""\n# a comment\nTHRESHOLD = 0.5  # why 0.5\n\ndef keep(x):\n'
                   '    """Why, longer."""\n\n    return (x\n            > THRESHOLD)\n')
    assert job.fingerprint_modules([src]) == base
    src.write_text(code.replace("0.5", "0.55"))
    assert job.fingerprint_modules([src]) != base
    src.write_text('"""Tissue mask."""\n\nTHRESHOLD = 0.5\n\n\ndef keep(x):\n    return x >= THRESHOLD\n')
    assert job.fingerprint_modules([src]) != base
    only_doc = tmp_path / "only_doc.py"  # a function whose body is its docstring still parses to a body
    only_doc.write_text('def f():\n    """Nothing."""\n')
    assert job.code_of(only_doc) != job.code_of(src)
    # the real tiling code: its fingerprint is this hash of its modules' code
    assert job.code_fingerprint() == job.fingerprint_modules(job.tiling_modules())


RUNNER = """
import sys
from histcode.slides.config import TileConfig
from histcode.slides.tiling import tile_cohort
tile_cohort(sys.argv[1], sys.argv[2], TileConfig(), workers=0, progress=False)
"""


def test_kill_mid_run_then_rerun_is_identical(tmp_path: Path, manifest_writer) -> None:
    links = []
    for i in range(6):
        link = tmp_path / f"slide{i}.svs"
        link.symlink_to(CMU1)
        links.append((f"s{i}", link, ""))
    csv = manifest_writer(tmp_path / "slides.csv", links)
    ref, out = tmp_path / "ref", tmp_path / "out"
    tile_cohort(csv, ref, CFG, workers=0, progress=False)

    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(csv), str(out)], env=os.environ.copy())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(out.glob("*.h5")) and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list(out.glob("*.h5")))
    assert 1 <= done_at_kill < 6 and not (out / "process_list.csv").exists()

    tile_cohort(csv, out, CFG, workers=0, progress=False)
    assert not list(out.rglob("*.tmp"))
    assert _tree(out) == _tree(ref)


def test_shards_cover_the_cohort(tmp_path: Path, manifest_writer, scene_slide: Path) -> None:
    rows = [("a", CMU1, ""), ("b", scene_slide, ""), ("c", DICOM, "")]
    csv = manifest_writer(tmp_path / "slides.csv", rows)
    full, sharded = tmp_path / "full", tmp_path / "sharded"
    tile_cohort(csv, full, CFG, workers=0, progress=False)
    first = tile_cohort(csv, sharded, CFG, workers=0, progress=False, shard=parse_shard("0/2"))
    second = tile_cohort(csv, sharded, CFG, workers=0, progress=False, shard=parse_shard("1/2"))
    assert [r.slide for r in first] == ["a", "c"] and [r.slide for r in second] == ["b"]
    tree = {k: v for k, v in _tree(sharded).items() if k != ".process_list.lock"}
    assert tree == _tree(full)
    with pytest.raises(ValueError, match="0-based"):
        parse_shard("2/2")


CRASHER = '''
import os
from histcode.slides.job import SlideResult


class CrashJob:
    def __init__(self, slide_id, crash):
        self.slide_id, self.path, self.crash = slide_id, slide_id + ".svs", crash

    def run(self):
        if self.crash:
            os.abort()  # what a segfaulting slide decoder does to its process
        return SlideResult(slide=self.slide_id, status="done", n_tiles=1)
'''


def test_worker_crash_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "crashmod.py").write_text(CRASHER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import crashmod  # type: ignore[import-not-found]

    jobs = [crashmod.CrashJob(f"s{i}", crash=(i == 1)) for i in range(4)]
    got: dict[str, object] = {}
    run_jobs(jobs, 2, lambda r: got.__setitem__(r.slide, r))  # type: ignore[arg-type]
    assert sorted(got) == ["s0", "s1", "s2", "s3"]
    assert got["s1"].status == "failed" and "worker process crashed" in got["s1"].reason  # type: ignore[attr-defined]
    assert all(got[s].status == "done" for s in ("s0", "s2", "s3"))  # type: ignore[attr-defined]
    assert isinstance(jobs[0], crashmod.CrashJob) and SlideJob is not None


def test_pool_only_when_the_work_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small cohorts run in-process (a spawned worker costs more than it saves); large work gets the pool."""
    from histcode.slides import tiling

    jobs = [SlideJob(str(CMU1), f"s{i}", "out", CFG, None, None) for i in range(16)]
    small = tiling.job_seconds(jobs[0])
    assert tiling.SLIDE_COST_S < small < 1.0  # CMU-1's segmentation level is ~0.4 MP
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})  # a 2-CPU share of a bigger node
    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    assert tiling.plan_workers(jobs, 2) == 0 and tiling.plan_workers(jobs[:1], 8) == 0
    monkeypatch.setattr(tiling, "job_seconds", lambda job: 4.0)  # e.g. 100k-px slides
    assert tiling.plan_workers(jobs, 2) == 2 and tiling.plan_workers(jobs, 0) == 0
    assert tiling.plan_workers(jobs, 8) == 2  # the share, not the node's 128 CPUs
    assert tiling.plan_workers(jobs[:1], 2) == 0


def test_segmentation_read_follows_the_setting() -> None:
    """auto: at the target scale (a 40x scan reads twice its 20x twin's level-0 downsample); clam: CLAM's
    level (closest to 64x), except a single-level slide too large to hold, which is read shrunk to 64x."""
    from types import SimpleNamespace

    from histcode.slides.job import seg_downsample, seg_read_downsample
    from histcode.slides.reader import MAX_LEVEL_PIXELS

    def slide(w: int, h: int, downs: tuple[float, ...]) -> SimpleNamespace:
        ns = SimpleNamespace(dimensions=(w, h), level_downsamples=downs,
                             level_dimensions=[(int(w / d), int(h / d)) for d in downs])
        ns.best_level = lambda ds: SlideReader.best_level(ns, ds)  # type: ignore[arg-type]
        return ns

    clam = TileConfig.clam()
    assert seg_read_downsample(slide(2220, 2967, (1.0,)), clam, 1.0) == 1.0  # CMU-1: level 0, as CLAM
    assert seg_read_downsample(slide(100_000, 80_000, (1.0, 4.0, 16.0, 32.0)), clam, 1.0) == 32.0
    assert seg_read_downsample(slide(100_000, 80_000, (1.0, 4.0, 16.0)), clam, 1.0) == 16.0
    big = slide(60_000, 40_000, (1.0,))
    assert MAX_LEVEL_PIXELS < 60_000 * 40_000 and seg_read_downsample(big, clam, 1.0) == 64.0
    s20, s40 = slide(100_000, 80_000, (1.0, 4.0, 16.0)), slide(200_000, 160_000, (1.0, 4.0, 16.0))
    assert seg_read_downsample(s20, CFG, 1.0) == seg_downsample(CFG, 100_000) == 64.0
    assert seg_read_downsample(s40, CFG, 2.0) == 2 * seg_read_downsample(s20, CFG, 1.0)


def test_threads_give_the_sequential_outputs(tmp_path: Path, manifest_writer, scene_slide: Path) -> None:
    """Small cohorts tile on threads (no process start-up): same files, byte for byte, as one by one."""
    rows = [("a", CMU1, ""), ("b", scene_slide, ""), ("c", DICOM, "")]
    csv = manifest_writer(tmp_path / "slides.csv", rows)
    seq, thr = tmp_path / "seq", tmp_path / "thr"
    tile_cohort(csv, seq, CFG, workers=0, progress=False)
    got = tile_cohort(csv, thr, CFG, workers=2, progress=False)
    assert [r.slide for r in got] == ["a", "b", "c"] and _tree(thr) == _tree(seq)


def test_run_jobs_overlaps_slides_on_threads() -> None:
    import threading
    import time

    from histcode.slides.job import SlideResult

    live, peak, lock = [0], [0], threading.Lock()

    class Job:
        def __init__(self, sid: str) -> None:
            self.slide_id = sid

        def run(self) -> SlideResult:
            with lock:
                live[0] += 1
                peak[0] = max(peak[0], live[0])
            time.sleep(0.05)
            with lock:
                live[0] -= 1
            return SlideResult(slide=self.slide_id, status="done", n_tiles=1)

    got: list[str] = []
    run_jobs([Job(f"s{i}") for i in range(4)], 0, lambda r: got.append(r.slide), threads=2)  # type: ignore[list-item]
    assert sorted(got) == ["s0", "s1", "s2", "s3"] and peak[0] == 2
    peak[0] = 0
    run_jobs([Job(f"s{i}") for i in range(3)], 0, lambda r: got.append(r.slide))  # type: ignore[list-item]
    assert peak[0] == 1


def test_a_damaged_slide_is_tiled_without_the_tiles_over_its_bad_tile(tmp_path: Path, manifest_writer,
                                                                       bad_jpeg_tile_slide, caplog) -> None:
    """One corrupt JPEG tile failed the whole slide at segmentation. Now the slide is tiled: the tiles over the
    unreadable block are dropped (extraction could not read them), the reason says so, the mask shows it in red,
    and a rerun keeps the note."""
    path, (bx, by, bw, bh) = bad_jpeg_tile_slide
    csv = manifest_writer(tmp_path / "slides.csv", [("bad", path, ""), ("good", CMU1, "")])
    res = {r.slide: r for r in tile_cohort(csv, tmp_path / "out", CFG, workers=0, progress=False)}
    assert res["good"].n_tiles == CMU1_TILES and res["good"].reason == ""
    bad = res["bad"]
    assert bad.status == "done" and CMU1_TILES - 4 <= bad.n_tiles < CMU1_TILES
    assert bad.reason.startswith("damaged: 1 region(s) unreadable at every pyramid level (0.014 mm²")
    assert f"{CMU1_TILES - bad.n_tiles} tiles over them dropped" in bad.reason
    assert "level-0 px; OpenSlideError: Corrupt JPEG data: premature end of data segment)" in bad.reason
    coords, attrs = read_coords(tmp_path / "out" / "bad.h5")
    assert attrs["unreadable_regions"] == [[bx, by, bw, bh]] and "unreadable_note" not in read_coords(
        tmp_path / "out" / "good.h5")[1]
    x, y, size = coords[:, 0], coords[:, 1], attrs["patch_size"]
    assert not np.any((x < bx + bw) & (bx < x + size) & (y < by + bh) & (by < y + size))
    with SlideReader(path) as s:  # every kept tile reads: extraction loses nothing more
        for cx, cy in coords:
            s.read_tile(int(cx), int(cy), size, 64)
    red = [int(np.all(cv2.imread(str(tmp_path / "out" / "masks" / f"{k}.png")) == (0, 0, 230), axis=2).sum())
           for k in ("bad", "good")]
    assert red[0] > 0 and red[1] == 0  # the legend box, and the block itself is tinted
    entries = {e.slide: e for e in read_entries(tmp_path / "out" / "process_list.csv", tmp_path / "out" / "masks")}
    assert (entries["bad"].damaged, entries["good"].damaged) == (True, False)
    # same slide size, so the same picture once each mask's legend strip (one row longer when damaged) is cut off
    assert _picture(entries["bad"]).shape == _picture(entries["good"]).shape
    with caplog.at_level(logging.WARNING, logger="histcode.slides.stage"):
        assert warn_damaged(tmp_path / "out" / "process_list.csv", "c") == {"bad": bad.reason}
    assert caplog.messages == [f"tile c: bad {bad.reason}"]
    again = {r.slide: r for r in tile_cohort(csv, tmp_path / "out", CFG, workers=0, progress=False)}
    assert again["bad"].reason == bad.reason
    plist = pd.read_csv(tmp_path / "out" / "process_list.csv", keep_default_na=False).set_index("slide")
    assert plist.loc["bad", "reason"] == bad.reason and plist.loc["bad", "status"] == "done"


def test_a_damaged_block_leaves_the_rest_of_the_mask_as_it_was(tmp_path: Path, manifest_writer,
                                                               bad_dicom_frame_slide) -> None:
    """The real DICOM slide with one of its 40 frames damaged: the block no level decodes is inpainted and kept out
    of the segmentation's slide-wide statistics. Left white, it raised the glass colour and its edge read as fat
    membranes, and the fat detector called glass fat across the slide (339 tiles became 478)."""
    csv = manifest_writer(tmp_path / "slides.csv", [("bad", bad_dicom_frame_slide, ""), ("good", DICOM, "")])
    res = {r.slide: r for r in tile_cohort(csv, tmp_path / "out", CFG, workers=0, progress=False)}
    assert res["bad"].reason.startswith("damaged: 1 region(s)") and res["good"].reason == ""
    coords, attrs = read_coords(tmp_path / "out" / "bad.h5")
    (bx, by, bw, bh), size = attrs["unreadable_regions"][0], attrs["patch_size"]

    def outside(tiles: np.ndarray) -> set[tuple[int, int]]:
        over = (tiles[:, 0] < bx + bw) & (bx < tiles[:, 0] + size) & (tiles[:, 1] < by + bh) & (by < tiles[:, 1] + size)
        return {(int(x), int(y)) for x, y in tiles[~over]}

    good, bad = outside(read_coords(tmp_path / "out" / "good.h5")[0]), outside(coords)
    assert len(bad) == len(coords)  # no tile over the block
    assert len(good & bad) >= 0.98 * len(good) and len(bad - good) <= 0.02 * len(good)  # 339 → 478 before
    assert abs(res["bad"].tissue_area_mm2 - res["good"].tissue_area_mm2) <= 0.02 * res["good"].tissue_area_mm2


def test_unscanned_white_is_not_glass(tmp_path: Path, manifest_writer, unscanned_band_slides) -> None:
    """What a scanner did not scan reads as white (transparent in MIRAX, Leica SCN or sparse DICOM; opaque white
    after some conversions). Left in the segmentation's statistics it set the glass colour to 255 and the fat
    detector's noise level to 0: the real DICOM slide with a white band beside it went from 323 to 480 tiles
    (transparent) or 513 (opaque), glass called fat. Now it tiles as the slide alone does, shifted by the band."""
    plain, transparent, white = unscanned_band_slides
    csv = manifest_writer(tmp_path / "slides.csv", [("plain", plain, ""), ("transparent", transparent, ""),
                                                    ("white", white, "")])
    res = {r.slide: r for r in tile_cohort(csv, tmp_path / "out", CFG, workers=0, progress=False)}
    ref = read_coords(tmp_path / "out" / "plain.h5")[0]
    assert len(ref) > 250
    for name in ("transparent", "white"):
        coords = read_coords(tmp_path / "out" / f"{name}.h5")[0]
        np.testing.assert_array_equal(coords - np.array([256, 0]), ref)  # the band is a multiple of the tile
        assert res[name].tissue_area_mm2 == pytest.approx(res["plain"].tissue_area_mm2, rel=1e-9)
    with SlideReader(transparent) as s:
        rgb, ds, nodata = s.read_downsampled_masked(4.0)
        band = round(256 / ds)
        assert nodata is not None and nodata[:, :band - 1].all() and not nodata[:, band + 1:].any()
        assert np.all(rgb[:, :band - 1] == 255)
    with SlideReader(white) as s:
        assert s.read_downsampled_masked(4.0)[2] is None  # opaque: no way to know, white is left to the statistics
