"""Tissue detection against the generator's truth and against CLAM's tiles, per slide and pooled.

Generates a synthetic cohort (fresh seed; normal slides adipose-rich) unless ``--cohort`` points at one, then
for each tissue model (``default``: regions; ``clam_grid``: the regions mask tiled by CLAM's rule, grid and
segmentation level; ``otsu_od``: the mask before fat was recognised; ``clam_preset``):

* truth: a slide-grid tile is tissue when its footprint is >= 50 % tissue in the region mask (adipose counts
  as tissue); precision = share of kept tiles that are tissue; recall = share of tissue tiles >= 50 %
  covered by the kept tiles (so per-contour grids are scored like the slide grid); covered tissue area;
* CLAM: runs mahmoodlab/CLAM's ``create_patches_fp.py`` on the same slides (``--clam-dir``, ``--clam-python``;
  its own venv, not a project dependency; skipped with a message when absent) and reports the area IoU of
  the tile footprints on a downsample-16 grid and the tile counts. CMU-1-Small-Region is compared with
  CLAM's stored reference coordinates (tests/data/clam_CMU-1-Small-Region.h5) and with the live run; it and
  the real DICOM test slide are compared with CLAM's stored coordinates (``--real-only``: just those).

    python benchmarks/bench_tissue.py --seed 2027 --patients 4 \
        --clam-dir /path/to/CLAM --clam-python /path/to/clam-venv/bin/python
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from histcode.atomic import write_json
from histcode.io.truth import read_region_mask, read_slide_truth, tile_region_fractions
from histcode.slides.config import TileConfig
from histcode.slides.grid import grid_coords, tissue_fractions
from histcode.slides.job import segment_slide, select_coords
from histcode.slides.reader import SlideReader
from histcode.synth.config import SynthConfig
from histcode.synth.generate import generate
from histcode.synth.layout import TISSUE_CODES

ROOT = Path(__file__).resolve().parents[1]
CMU1 = ROOT / "tests" / "data" / "CMU-1-Small-Region.svs"
CLAM_CMU1 = ROOT / "tests" / "data" / "clam_CMU-1-Small-Region.h5"
# real slides with CLAM's own coordinates (tests/data/PROVENANCE.md): Aperio SVS at 0.5 µm/px, DICOM at 2 µm/px
REAL_SLIDES = ((CMU1, CLAM_CMU1), (ROOT / "tests" / "data" / "slidetool_test_dicom.dcm",
                                   ROOT / "tests" / "data" / "clam_slidetool_test_dicom.h5"))
# CLAM's defaults with small-area filters (the preset its CMU-1 reference was made with)
CLAM_PRESET = ("seg_level,sthresh,mthresh,close,use_otsu,keep_ids,exclude_ids,a_t,a_h,max_n_holes,vis_level,"
               "line_thickness,white_thresh,black_thresh,use_padding,contour_fn\n"
               "-1,8,7,4,True,none,none,1,1,8,-1,50,5,50,True,four_pt\n")
IOU_GRID = 16
LEAN_FAT = 0.3  # slides with less planted fat: where agreeing with CLAM does not mean losing fat


def models(settings: list[str] | None = None) -> dict[str, TileConfig]:
    """The compared tissue models; ``settings`` (``KEY=VALUE``, ``--tile``) apply to all but the CLAM preset."""
    base = TileConfig().with_settings(settings)
    return {"default": base,
            "clam_grid": dataclasses.replace(base, tissue_model="regions", tissue_rule="four_point",
                                             grid_origin="contour", seg_level="clam"),
            "otsu_od": dataclasses.replace(base, tissue_model="otsu_od"),
            "clam_preset": TileConfig.clam()}


def footprint(coords: np.ndarray, size: int, width: int, height: int, g: int = IOU_GRID) -> np.ndarray:
    """Union of tile footprints on a downsample-``g`` grid (bool)."""
    m = np.zeros((-(-height // g), -(-width // g)), bool)
    for x, y in np.asarray(coords, np.int64):
        m[max(y, 0) // g:max(y + size, 0) // g, max(x, 0) // g:max(x + size, 0) // g] = True
    return m


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@functools.lru_cache(maxsize=16)  # the real slides are tiled by every model for the JSON, CMU-1 block and figure
def tile(path: Path, cfg: TileConfig) -> tuple[np.ndarray, int, tuple[int, int]]:
    """(coords, level-0 tile size, slide dimensions); callers only read the coords."""
    with SlideReader(path) as s:
        seg = segment_slide(s, cfg)
        return select_coords(seg, *s.dimensions, cfg), seg.size, s.dimensions


def truth_scores(mask: np.ndarray, ds: float, coords: np.ndarray, size: int, width: int,
                 height: int) -> dict[str, float]:
    """Tile recall/precision against the truth and the covered truth-tissue area.

    Precision: share of kept tiles whose footprint is >= 50 % tissue. Recall: share of slide-grid tissue
    tiles (footprint >= 50 % tissue) whose footprint is >= 50 % covered by the kept tiles, so tiles on a
    slide grid and on CLAM's per-contour grids are scored alike (on the slide grid it is tile identity).
    """
    tissue = np.isin(mask, TISSUE_CODES)
    kept_frac = tile_region_fractions(mask, ds, coords, size)[:, list(TISSUE_CODES)].sum(1)
    out = {"n_tiles": len(coords), "precision": float((kept_frac >= 0.5).mean()) if len(coords) else float("nan")}
    grid = grid_coords(width, height, size)
    is_t = tile_region_fractions(mask, ds, grid, size)[:, list(TISSUE_CODES)].sum(1) >= 0.5
    g = max(1, int(ds))
    cover = footprint(coords, size, width, height, g)
    covered = tissue_fractions(cover, g, grid, size) >= 0.5
    out.update(tp=int((covered & is_t).sum()), fn=int((~covered & is_t).sum()),
               tissue_tiles_kept=int((kept_frac >= 0.5).sum()))
    out["recall"] = out["tp"] / max(out["tp"] + out["fn"], 1)
    fp = cover[: tissue.shape[0], : tissue.shape[1]]
    out["area_recall"] = float((fp & tissue[: fp.shape[0], : fp.shape[1]]).sum() / max(tissue.sum(), 1))
    return out


def run_clam(clam_dir: Path, python: Path, slides: list[Path], work: Path) -> tuple[dict[str, np.ndarray], float]:
    """CLAM's create_patches_fp.py on ``slides`` (symlinked into one folder) → ({stem: coords}, seconds)."""
    src, out = work / "clam_src", work / "clam_out"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    src.mkdir(parents=True)
    for p in slides:
        (src / p.name).symlink_to(p.resolve())
    preset = clam_dir / "presets" / "histcode_bench_tiny_otsu.csv"
    preset.write_text(CLAM_PRESET)
    t0 = time.perf_counter()
    proc = subprocess.run([str(python), "create_patches_fp.py", "--source", str(src), "--save_dir", str(out),
                           "--patch_size", "256", "--seg", "--patch", "--preset", preset.name],
                          cwd=clam_dir, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"CLAM failed ({proc.returncode}): {proc.stderr[-2000:]}")
    coords = {}
    for p in slides:
        h5 = out / "patches" / f"{p.stem}.h5"
        if h5.exists():
            with h5py.File(h5) as f:
                coords[p.stem] = f["coords"][:]
        else:
            coords[p.stem] = np.zeros((0, 2), np.int64)
    return coords, sec


def make_cohort(args: argparse.Namespace, work: Path) -> Path:
    if args.cohort:
        return Path(args.cohort)
    out = work / f"synth_{args.seed}"
    cfg = SynthConfig.tiny(seed=args.seed, n_patients=args.patients, n_without_normal=0,
                           n_patients_external=max(1, args.patients // 2), slide_width=args.width,
                           slide_height=args.height, n_svs=1, n_40x=0, adipose_fraction=tuple(args.adipose),
                           pen_rings=args.pen_rings, stain_jitter=args.stain_jitter, workers=1)
    generate(cfg, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2027, help="generator seed (report on seeds never tuned on)")
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--width", type=int, default=3072)
    ap.add_argument("--height", type=int, default=2560)
    ap.add_argument("--adipose", type=float, nargs=2, default=[0.2, 0.7], help="fat share range of normals")
    ap.add_argument("--stain-jitter", type=float, default=1.0,
                    help="scale of every per-slide stain spread (SynthConfig.stain_jitter; > 1: more heavily and more "
                         "lightly stained slides)")
    ap.add_argument("--pen-rings", type=int, default=0,
                    help="closed ink rings over the tissue of each slide with a pen mark (pathologists' circles)")
    ap.add_argument("--tile", nargs="*", metavar="KEY=VALUE",
                    help="tile settings for every model but the CLAM preset (e.g. pen_dark_ratio=0.7)")
    ap.add_argument("--cohort", help="existing synthetic cohort folder (skips generation)")
    ap.add_argument("--real-only", action="store_true",
                    help="only the real slides (CMU-1, the DICOM test slide) against CLAM's stored coordinates")
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    ap.add_argument("--clam-dir", type=Path, help="a checkout of mahmoodlab/CLAM")
    ap.add_argument("--clam-python", type=Path, help="python of CLAM's own environment")
    ap.add_argument("--out", default="benchmarks/results/bench_tissue.json",
                    help="JSON; the figure goes beside it (.png)")
    args = ap.parse_args()
    if args.real_only:  # the real slides against CLAM's stored coordinates only: seconds, no cohort
        real = {slide.name: real_slide(slide, ref, args.tile) for slide, ref in REAL_SLIDES}
        print(json.dumps(real, indent=2))
        write_json(args.out, {"real_slides": real})
        for slide, ref in REAL_SLIDES:
            plot_real(slide, ref, Path(args.out).with_name(f"{Path(args.out).stem}_{slide.stem}.png"),
                      real[slide.name]["default"]["iou_vs_clam_reference"])
        return
    tmp = tempfile.TemporaryDirectory()
    work = Path(args.work) if args.work else Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    root = make_cohort(args, work)
    gt = root / "ground_truth"
    truth = read_slide_truth(gt)
    truth = truth[truth["mpp"] == 0.5]  # CLAM tiles 256 level-0 px whatever the scan: compare 20x slides
    paths = {r.slide_id: root / r.cohort / "slides" / r.file_name for r in truth.itertuples()}
    clam, clam_sec = None, None
    if args.clam_dir and args.clam_python and (args.clam_dir / "create_patches_fp.py").exists() \
            and args.clam_python.exists():
        clam, clam_sec = run_clam(args.clam_dir, args.clam_python, [*paths.values(), CMU1], work)
    else:
        print("CLAM not found (--clam-dir/--clam-python): CLAM comparison limited to the stored CMU-1 reference.")
    rows = []
    for r in truth.itertuples():
        mask, ds = read_region_mask(gt, r.cohort, r.slide_id)
        for name, cfg in models(args.tile).items():
            coords, size, (w, h) = tile(paths[r.slide_id], cfg)
            row = {"slide": r.slide_id, "label": r.label, "adipose": r.planted_adipose_fraction,
                   "pen": bool(r.has_pen), "model": name,
                   **truth_scores(mask, ds, coords, size, w, h)}
            if clam is not None:
                ref = clam[Path(r.file_name).stem]
                row.update(clam_tiles=len(ref), clam_iou=iou(footprint(coords, size, w, h), footprint(ref, 256, w, h)))
            rows.append(row)
    df = pd.DataFrame(rows)
    pooled = {}
    for name, g in df.groupby("model"):
        tp, fn = g["tp"].sum(), g["fn"].sum()
        p = {"recall": float(tp / max(tp + fn, 1)), "min_recall": float(g["recall"].min()),
             "precision": float(g["tissue_tiles_kept"].sum() / max(g["n_tiles"].sum(), 1)),
             "min_precision": float(g["precision"].min()), "area_recall": float(g["area_recall"].mean())}
        if clam is not None:
            lean = g[g["adipose"] < LEAN_FAT]
            p.update(clam_iou_mean=float(g["clam_iou"].mean()), clam_iou_min=float(g["clam_iou"].min()),
                     count_ratio_mean=float((g["n_tiles"] / g["clam_tiles"].clip(lower=1)).mean()),
                     lean_slides=len(lean), lean_clam_iou_mean=float(lean["clam_iou"].mean()),
                     lean_clam_iou_min=float(lean["clam_iou"].min()),
                     lean_count_ratio_mean=float((lean["n_tiles"] / lean["clam_tiles"].clip(lower=1)).mean()))
        pooled[name] = p
    cmu = {}
    ref, _ = clam_reference(CLAM_CMU1)
    for name, cfg in models(args.tile).items():
        coords, size, (w, h) = tile(CMU1, cfg)
        cmu[name] = {"n_tiles": len(coords), "clam_ref_tiles": len(ref),
                     "iou_vs_clam_reference": iou(footprint(coords, size, w, h), footprint(ref, 256, w, h))}
        if clam is not None:
            live = clam[CMU1.stem]
            cmu[name].update(clam_live_tiles=len(live),
                             iou_vs_clam_live=iou(footprint(coords, size, w, h), footprint(live, 256, w, h)))
    real = {slide.name: real_slide(slide, ref, args.tile) for slide, ref in REAL_SLIDES}
    pd.set_option("display.width", 200)
    print(df.drop(columns=["slide"]).round(3).to_string())
    result = {"cohort": str(root), "seed": args.seed, "adipose_range": args.adipose,
              "stain_jitter": args.stain_jitter, "pooled": pooled, "cmu1": cmu, "real_slides": real,
              "clam_seconds": clam_sec, "per_slide": rows}
    print(json.dumps({"pooled": pooled, "cmu1": cmu, "real_slides": real}, indent=2))
    write_json(args.out, result)
    label = f"seed {args.seed}" if not args.cohort else Path(args.cohort).name
    if args.pen_rings and not args.cohort:
        label += f", {args.pen_rings} closed ink rings on each slide with a pen mark"
    plot(df, Path(args.out).with_suffix(".png"), label)
    tmp.cleanup()


def clam_reference(path: Path) -> tuple[np.ndarray, int]:
    """CLAM's stored coordinates of a real slide and their level-0 patch size."""
    with h5py.File(path) as f:
        return f["coords"][:], int(f["coords"].attrs["patch_size"])


def real_slide(slide: Path, reference: Path, settings: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Every model on a real slide against CLAM's stored coordinates: tile counts and footprint IoU (grid 1/16 of
    a tile)."""
    ref, ref_size = clam_reference(reference)
    out = {}
    for name, cfg in models(settings).items():
        coords, size, (w, h) = tile(slide, cfg)
        g = max(1, size // 16)
        out[name] = {"n_tiles": len(coords), "clam_ref_tiles": len(ref),
                     "iou_vs_clam_reference": iou(footprint(coords, size, w, h, g), footprint(ref, ref_size, w, h, g))}
    return out


def plot_real(slide: Path, reference: Path, path: Path, default_iou: float) -> None:
    """The default's tiles against CLAM's on a real slide: kept by both, by the default only, by CLAM only
    (``default_iou``: :func:`real_slide`'s, so the title and the JSON agree)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    coords, size, (w, h) = tile(slide, TileConfig())
    ref, ref_size = clam_reference(reference)
    with SlideReader(slide) as s:
        rgb, _ds = s.read_downsampled(max(1.0, max(w, h) / 1600))
    import cv2

    def shown(c: np.ndarray, sz: int) -> np.ndarray:
        full = footprint(c, sz, w, h, 1).astype(np.uint8)
        return cv2.resize(full, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)

    ours, clam = shown(coords, size), shown(ref, ref_size)
    over = rgb.astype(np.float32)
    parts = {"both": (ours & clam, (0.0, 0.6, 0.0)), "HistCode default only": (ours & ~clam, (0.85, 0.1, 0.1)),
             "CLAM only": (~ours & clam, (0.1, 0.2, 0.85))}
    for mask, colour in parts.values():
        over[mask] = 0.6 * over[mask] + 0.4 * 255 * np.array(colour)
    fig, ax = plt.subplots(figsize=(6, 6 * rgb.shape[0] / rgb.shape[1] if rgb.shape[0] < 2 * rgb.shape[1] else 9))
    ax.imshow(over.astype(np.uint8))
    ax.set_axis_off()
    ax.set_title(f"{slide.name}: HistCode default {len(coords)} tiles vs CLAM {len(ref)} "
                 f"(IoU {default_iou:.2f})", fontsize=9)
    ax.legend(handles=[Patch(color=c, label=k) for k, (_m, c) in parts.items()], loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(df: pd.DataFrame, path: Path, label: str) -> None:
    """Per-slide tissue recall against the slide's planted fat share, one marker per model: the relation the
    mask must not have (fat lost as the fat share rises)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.6, 4.6))
    style = {"default": ("tab:green", "o"), "clam_grid": ("tab:olive", "^"), "otsu_od": ("tab:grey", "s"),
             "clam_preset": ("tab:purple", "v")}
    for name, g in df.groupby("model", sort=False):
        colour, marker = style.get(str(name), ("tab:blue", "x"))
        tumour = g["label"] == 1
        for sel, fill in ((tumour, colour), (~tumour, "none")):
            ax.scatter(g.loc[sel, "adipose"], g.loc[sel, "recall"], marker=marker, edgecolors=colour, facecolors=fill,
                       s=28, label=f"{name} ({'tumour' if fill != 'none' else 'normal'} slides)")
    ax.axhline(0.90, color="black", lw=0.7, ls=":", label="issue 12: no slide below 0.90")
    ax.set_xlabel("planted fat share of the slide's tissue")
    ax.set_ylabel("tile recall against the truth (adipose = tissue)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Tissue recall per slide vs fat: {label}\n(filled: tumour slides, open: normal slides)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
