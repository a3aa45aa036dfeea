"""``histcode tile`` against CLAM's ``create_patches_fp.py`` on the same slides: whole-process wall time,
interleaved (histcode, CLAM, histcode, ...; the detached replay of histcode's deferred MLflow run is waited for
between runs and reported apart), the ratio of medians, and the tile agreement (area IoU of the
footprints on a downsample-16 grid, histcode default and CLAM preset vs CLAM); plus, in-process, each
slide's tiling time against the time to decode its segmentation level (the bound tiling cannot beat).

Slides: CMU-1-Small-Region plus the 20x slides of a synthetic cohort (``--cohort``, or one generated with
``--seed``). CLAM runs from its own checkout and venv (``--clam-dir``, ``--clam-python``; not a project
dependency) with CLAM's defaults and small-area filters (tiny_otsu), 256 px tiles.

    python benchmarks/bench_tile_speed.py --n-synth 15 --rounds 5 \
        --clam-dir /path/to/CLAM --clam-python /path/to/clam-venv/bin/python

``--print-commands`` prints the two prepared commands (run from the work folder) for an external timer.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

from histcode.atomic import write_json
from histcode.io.coords import read_coords
from histcode.io.truth import read_slide_truth
from histcode.slides.config import TileConfig
from histcode.slides.job import tile_slide
from histcode.synth.config import SynthConfig
from histcode.synth.generate import generate
from histcode.tracking import spool as run_spool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_tiling import NO_READ, seg_read_timer  # noqa: E402
from bench_tissue import CLAM_PRESET, CMU1, footprint, iou  # noqa: E402

# CLAM tiles at level 0; a 20x-equivalent 256-px tile on a 0.25 µm/px (40x) scan is 512 level-0 px
CLAM_PATCH = {"cohort": 256, "big": 512}


def prepare(work: Path, slides: list[Path], clam_dir: Path | None,
            clam_patch: int = 256, workers: int | None = None) -> tuple[list[str], list[str] | None]:
    """Project folder (params, manifest) and CLAM preset; returns the histcode and CLAM command lines."""
    src = work / "slides"
    src.mkdir(parents=True, exist_ok=True)
    for p in slides:
        if not (src / p.name).exists():
            (src / p.name).symlink_to(p.resolve())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["base"]["cohorts"] = {"bench": {"kind": "barcode", "source_dir": "slides", "slide_dir": "slides"}}
    params["base"]["train_cohort"] = "bench"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    man = work / "data" / "manifests" / "bench"
    man.mkdir(parents=True, exist_ok=True)
    lines = ["slide_id,path,patient_id,cohort,sample_type,label,mpp"]
    lines += [f"{p.stem},{(src / p.name).resolve()},{p.stem},bench,,," for p in slides]
    (man / "slides.csv").write_text("\n".join(lines) + "\n")
    ours = ["sh", "-c", f"rm -rf data/tiles && exec {shlex.quote(sys.executable)} -m histcode.cli tile "
            "--cohort bench --params params.yaml --no-progress"
            + ("" if workers is None else f" --workers {workers}")]
    clam = None
    if clam_dir is not None:
        (clam_dir / "presets" / "histcode_bench_tiny_otsu.csv").write_text(CLAM_PRESET)
        clam = [str(clam_dir), "create_patches_fp.py", "--source", str(src), "--save_dir", str(work / "clam"),
                "--patch_size", str(clam_patch), "--step_size", str(clam_patch), "--seg", "--patch",
                "--preset", "histcode_bench_tiny_otsu.csv"]
    return ours, clam


def clam_command(clam: list[str], python: Path) -> list[str]:
    clam_dir, script, *rest = clam
    return ["sh", "-c", f"rm -rf {shlex.quote(rest[3])} && cd {shlex.quote(clam_dir)} && exec "
            f"{shlex.quote(str(python))} {script} " + " ".join(shlex.quote(a) for a in rest)]


def drain_spool(work: Path, timeout_s: float = 120.0) -> float:
    """Wait until the detached replay of ``histcode tile``'s deferred MLflow run has finished (no pending record,
    replay lock free), so it never runs during the next timed command; returns the seconds waited."""
    root = work / "mlruns" / "spool"
    t0 = time.perf_counter()
    while run_spool.pending(root) and time.perf_counter() - t0 < timeout_s:
        time.sleep(0.05)
    with run_spool.locked(root):  # a replay in progress holds this lock
        pass
    if run_spool.pending(root):
        raise RuntimeError(f"{root}: deferred run not replayed within {timeout_s} s; see {root}/replay.log")
    return time.perf_counter() - t0


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{cmd}: exit {proc.returncode}: {proc.stderr[-1500:]}")
    return sec


def agreement(work: Path, slides: list[Path], clam_patch: int = 256) -> dict[str, float]:
    """Mean/min area IoU and count ratio of histcode's tiles (from the timed run) vs CLAM's, and of the CLAM
    preset (in-process) vs CLAM's."""
    out: dict[str, list[float]] = {"iou_default": [], "iou_clam_preset": [], "count_ratio_default": []}
    for p in slides:
        h5 = work / "clam" / "patches" / f"{p.stem}.h5"
        ref = h5py.File(h5)["coords"][:] if h5.exists() else np.zeros((0, 2), int)
        ours, attrs = read_coords(work / "data" / "tiles" / "bench" / f"{p.stem}.h5")
        w, h = attrs["level_dim"]
        out["iou_default"].append(iou(footprint(ours, attrs["patch_size"], w, h), footprint(ref, clam_patch, w, h)))
        out["count_ratio_default"].append(len(ours) / max(len(ref), 1))
        res = tile_slide(p, p.stem, work / "preset", TileConfig.clam())
        pre, _ = read_coords(work / "preset" / f"{p.stem}.h5")
        out["iou_clam_preset"].append(iou(footprint(pre, res.tile_size_level0 or 256, w, h),
                                          footprint(ref, clam_patch, w, h)))
    return {**{f"{k}_mean": float(np.mean(v)) for k, v in out.items()},
            **{f"{k}_min": float(np.min(v)) for k, v in out.items()}}


def decode_bound(slides: list[Path], work: Path) -> list[dict[str, float]]:
    """Per slide, in-process: tile_slide seconds vs the seconds of the segmentation-level read it needs."""
    rows = []
    with seg_read_timer() as reads:
        for p in slides:
            for _ in range(2):  # second pass: files in the page cache, as the timed runs see them
                reads.clear()
                t0 = time.perf_counter()
                tile_slide(p, p.stem, work / "inproc", TileConfig())
                sec = time.perf_counter() - t0
            if not reads:
                raise SystemExit(f"{p.name}: {NO_READ}")
            rows.append({"slide": p.stem, "tile_s": sec, "seg_read_s": sum(reads), "tile_vs_read": sec / sum(reads)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cohort", type=Path, help="synthetic cohort folder (default: generate one)")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--n-synth", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--clam-dir", type=Path)
    ap.add_argument("--clam-python", type=Path)
    ap.add_argument("--print-commands", action="store_true")
    ap.add_argument("--big", help="WxH: time one large slide instead (e.g. 100000x80000)")
    ap.add_argument("--workers", type=int, help="histcode tile --workers (default: tile.workers; 0 = one slide "
                    "at a time, as CLAM runs)")
    ap.add_argument("--out", default="benchmarks/results/bench_tile_speed.json")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    cohort = args.cohort
    if args.big:  # one large JPEG pyramid (bench_heatmap's 100k × 80k px slide at 0.25 µm/px)
        from bench_heatmap import write_slide

        w, h = (int(v) for v in args.big.lower().split("x"))
        big = work / "big" / "big.tiff"
        if not big.exists():
            big.parent.mkdir(parents=True, exist_ok=True)
            write_slide(big, w, h)
        slides = [big]
    elif cohort is None:
        cohort = work / "synth"
        if not (cohort / "ground_truth" / "slides.csv").exists():
            generate(SynthConfig(seed=args.seed, n_patients=args.n_synth // 2 + 1, n_patients_external=1,
                                 n_without_normal=0, n_40x=0, workers=1, progress=False), cohort)
    if not args.big:
        truth = read_slide_truth(cohort / "ground_truth")
        synth = [cohort / r.cohort / "slides" / r.file_name for r in truth.itertuples() if r.mpp == 0.5]
        slides = [CMU1, *synth[: args.n_synth]]
    have_clam = bool(args.clam_dir and args.clam_python and (args.clam_dir / "create_patches_fp.py").exists())
    if not have_clam:
        print("CLAM not found (--clam-dir/--clam-python): timing histcode only.")
    clam_patch = CLAM_PATCH["big" if args.big else "cohort"]
    ours, clam = prepare(work, slides, args.clam_dir if have_clam else None, clam_patch, args.workers)
    clam_cmd = clam_command(clam, args.clam_python) if clam else None
    if args.print_commands:
        print(f"cd {work}\nhistcode: {shlex.join(ours)}")
        if clam_cmd:
            print(f"CLAM:     {shlex.join(clam_cmd)}")
        return
    t_ours, t_clam, t_replay = [], [], []
    for _ in range(args.rounds):
        t_ours.append(timed(ours, work))
        t_replay.append(drain_spool(work))
        if clam_cmd:
            t_clam.append(timed(clam_cmd, work))
    result = {"n_slides": len(slides), "rounds": args.rounds, "workers": args.workers, "histcode_tile_s": t_ours,
              "histcode_median_s": float(np.median(t_ours)),
              # the MLflow run's replay after the command returned (not in histcode_tile_s; never overlaps CLAM)
              "replay_after_exit_s": t_replay, "replay_after_exit_median_s": float(np.median(t_replay))}
    if t_clam:
        result.update(clam_s=t_clam, clam_median_s=float(np.median(t_clam)),
                      speedup_vs_clam=float(np.median(t_clam) / np.median(t_ours)),
                      **agreement(work, slides, clam_patch))
    bound = decode_bound(slides, work)
    ratios = [b["tile_vs_read"] for b in bound]
    result.update(per_slide_decode_bound=bound, tile_vs_read_median=float(np.median(ratios)),
                  inprocess_tile_s_total=float(sum(b["tile_s"] for b in bound)),
                  seg_read_s_total=float(sum(b["seg_read_s"] for b in bound)))
    print(json.dumps({k: v for k, v in result.items() if k != "per_slide_decode_bound"}, indent=2))
    write_json(args.out, result)
    shutil.rmtree(work / "inproc", ignore_errors=True)
    tmp.cleanup()


if __name__ == "__main__":
    main()
