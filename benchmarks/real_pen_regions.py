"""Tissue a pathologist circled in pen, on real slides: how much of it the tissue mask keeps.

Data: the 319 whole-slide thumbnails of MSKCC's PenAnnotationExtractor (MIT; Schüffler et al., J Pathol Inform
2021), in which pathologists circled regions in pen, with the hand-drawn mask of each circled region. Clone that
repository and point ``--data`` at its ``data`` folder (thumbnails/thumbnail_N.jpg, annotations/resized/
labels_rs_N.png). The protocol was written before the first run: benchmarks/results/
mskcc_pen_regions_preregistration.txt.

Per slide: the circled tissue (stained pixels of the hand-drawn region that are not ink-coloured), the share of
it in the tissue mask ("kept"), and the share of the ink-coloured pixels the mask calls ink. ``--before-src``
runs another checkout's ``src`` on the same thumbnails in a child process and reports both; ``--tile KEY=VALUE``
sets tile options for this run and ``--baseline-tile KEY=VALUE`` runs a second configuration beside it:

    python benchmarks/real_pen_regions.py --data /path/to/PenAnnotationExtractor/data \
        --before-src /path/to/old/src --out benchmarks/results/real_pen_regions
    python benchmarks/real_pen_regions.py --data ... --tile pen_dark_ratio=0.7 --baseline-tile pen_dark_ratio=0.55

Against CLAM: ``--baseline-tile`` with CLAM's settings (``tissue_model=clam ... use_otsu=false``) runs its segmentation
on every thumbnail, and ``--clam-dir/--clam-python`` also runs CLAM's own ``create_patches_fp.py`` (its checkout and
venv) on ``--clam-slides``, with Otsu and with its fixed threshold, to check that emulation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from histcode.atomic import write_json
from histcode.slides.config import TileConfig
from histcode.slides.mask import segment_tissue

LEVEL0_UM = 0.25  # the thumbnails carry no MPP: segmented as a 40x slide's thumbnail at --seg-um


def thumbnail_paths(data: Path, sid: str) -> tuple[Path, Path]:
    return data / "thumbnails" / f"thumbnail_{sid}.jpg", data / "annotations" / "resized" / f"labels_rs_{sid}.png"


def pairs(data: Path) -> list[tuple[str, Path, Path]]:
    """(id, thumbnail, label) for every thumbnail with a label of the same size; a missing label is an error."""
    thumbs = sorted((data / "thumbnails").glob("thumbnail_*.jpg"))
    if not thumbs:
        raise SystemExit(f"{data / 'thumbnails'}: no thumbnail_*.jpg; --data must be PenAnnotationExtractor's data/")
    out = []
    for t in thumbs:
        sid = t.stem.split("_")[-1]
        _thumb, label = thumbnail_paths(data, sid)
        if not label.exists():
            raise SystemExit(f"{label}: missing; the checkout of PenAnnotationExtractor is incomplete")
        out.append((sid, t, label))
    return out


def ink_coloured(rgb: np.ndarray) -> np.ndarray:
    """Blue/green/black pen and what lies under it: hue 35-125 at saturation >= 60, or brightness < 60."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    return ((h >= 35) & (h <= 125) & (s >= 60)) | (v < 60)


def band_dark(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Dark pixels (brightness < 150) 2-12 px outside the circled region: mostly the ink line drawn around it."""
    r = region.astype(np.uint8)
    outer = cv2.dilate(r, np.ones((25, 25), np.uint8)).astype(bool)
    ring = outer & ~cv2.dilate(r, np.ones((5, 5), np.uint8)).astype(bool)
    return ring & (cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 2] < 150)


def load(thumb: Path, label: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(RGB thumbnail, circled region, ink-coloured pixels, circled tissue: stained and not ink-coloured, in the
    region)."""
    rgb = cv2.cvtColor(cv2.imread(str(thumb)), cv2.COLOR_BGR2RGB)
    region = cv2.imread(str(label))[..., 0] < 128  # BGR: the blue channel is low inside the circled region
    if region.shape != rgb.shape[:2]:
        raise SystemExit(f"{label}: {region.shape} does not match {thumb}'s {rgb.shape[:2]}")
    ink = ink_coloured(rgb)
    return rgb, region, ink, region & (rgb.min(2) < 200) & ~ink


def measure(thumb: Path, label: Path, seg_um: float, cfg: TileConfig | None = None) -> dict[str, float | int | None]:
    rgb, region, ink, circled = load(thumb, label)
    tm = segment_tissue(rgb, seg_um / LEVEL0_UM, cfg or TileConfig(), area_unit_px=512.0**2, seg_um=seg_um)
    band = band_dark(rgb, region)
    return {"circled_px": int(circled.sum()),
            "kept": float(tm.mask[circled].mean()) if circled.sum() >= 100 else None,
            "band_px": int(band.sum()), "band_in_mask": float(tm.mask[band].mean()) if band.sum() >= 50 else None,
            "ink_px": int(ink.sum()), "ink_found": float(tm.pen[ink].mean()) if ink.sum() >= 100 else None,
            "ink_in_mask": float(tm.mask[ink].mean()) if ink.sum() >= 100 else None,
            "tissue_fraction": float(tm.mask.mean())}


def run_all(data: Path, seg_um: float, progress: bool = True, cfg: TileConfig | None = None,
            parity: str = "all") -> dict[str, dict]:
    rows = {}
    items = [p for p in pairs(data) if parity == "all" or int(p[0]) % 2 == (parity == "odd")]
    for i, (sid, t, lab) in enumerate(items, 1):
        rows[sid] = measure(t, lab, seg_um, cfg)
        if progress and (i % 50 == 0 or i == len(items)):
            print(f"  {i}/{len(items)} thumbnails at {seg_um:g} um/px", file=sys.stderr, flush=True)
    return rows


def run_other(src: Path, data: Path, seg_um: float, parity: str = "all") -> dict[str, dict]:
    """``run_all`` with another ``src`` first on the path, in a child process (its imports resolve there)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import real_pen_regions as r;"
            f" from pathlib import Path; print(json.dumps(r.run_all(Path({str(data)!r}), {seg_um!r}, False,"
            f" parity={parity!r})))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(rows: dict[str, dict], key: str) -> dict[str, float | int]:
    x = np.array([r[key] for r in rows.values() if r[key] is not None], float)
    return {"n": int(x.size), "median": float(np.median(x)), "mean": float(x.mean()),
            "p10": float(np.percentile(x, 10)), "min": float(x.min()),
            "below_0.90": int((x < 0.90).sum()), "below_0.50": int((x < 0.50).sum())}


def figure(result: dict[str, dict], data: Path, seg_um: float, out: Path, cfg: TileConfig,
           baseline: str = "before") -> None:
    """Left: the share of circled tissue kept per slide, sorted, for each run; right: the four slides whose share
    changed most, in the QC picture's colours (this run's mask, ``cfg``), the circled region outlined in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from histcode.slides.render import render_mask

    res = result[f"{seg_um:g}um"]
    tags = [t for t in ("before", "now") if t in res]
    fig = plt.figure(figsize=(16, 8))
    ax = fig.add_subplot(1, 3, 1)
    for tag in tags:
        kept = np.sort([r["kept"] for r in res[tag]["slides"].values() if r["kept"] is not None])
        label = f"{baseline if tag == 'before' else tag}: mean {kept.mean():.3f}, < 0.9 on {(kept < 0.9).sum()}"
        ax.plot(np.arange(1, kept.size + 1), kept, label=label)
    ax.set(xlabel="slides, sorted", ylabel="share of the circled tissue in the tissue mask", ylim=(-0.02, 1.02),
           title=f"Circled tissue kept, {len(res[tags[-1]]['slides'])} real slides ({seg_um:g} µm/px)")
    ax.legend(loc="lower right")
    now = res["now"]["slides"]
    before = res["before"]["slides"] if "before" in res else now
    change = sorted(((now[s]["kept"] or 0) - (before[s]["kept"] or 0), s) for s in now)
    picks = [s for _d, s in change[-4:]][::-1] if "before" in res else sorted(now)[:4]
    for k, sid in enumerate(picks):
        rgb, region, _ink, _circled = load(*thumbnail_paths(data, sid))
        tm = segment_tissue(rgb, seg_um / LEVEL0_UM, cfg, area_unit_px=512.0**2, seg_um=seg_um)
        qc = render_mask(rgb, tm, np.zeros((0, 2), int), 512, title=f"MSKCC {sid}")
        qc = cv2.cvtColor(qc, cv2.COLOR_BGR2RGB)
        f = qc.shape[1] / rgb.shape[1]
        cs, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(qc, [np.round(c * f).astype(np.int32) for c in cs], -1, (255, 0, 0), max(2, round(2 * f)))
        a = fig.add_subplot(2, 3, 2 + k + (k >= 2))
        a.imshow(qc)
        b, n = (f"{r[sid]['kept']:.2f}" if r[sid]["kept"] is not None else "n/a" for r in (before, now))
        a.set_title(f"{sid}: kept {b} ({baseline}) → {n} (now)", fontsize=9)
        a.axis("off")
    fig.suptitle("Tissue circled in pen by pathologists (MSKCC PenAnnotationExtractor thumbnails; red: the hand-drawn"
                 " region; QC colours: green tissue, blue cut hole, magenta ink)")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(out, dpi=80, pil_kwargs={"quality": 85})
    plt.close(fig)


CLAM_PRESET_HEAD = ("seg_level,sthresh,mthresh,close,use_otsu,keep_ids,exclude_ids,a_t,a_h,max_n_holes,vis_level,"
                    "line_thickness,white_thresh,black_thresh,use_padding,contour_fn\n")
CLAM_CHECK_PX = 8  # CLAM's patch side on the thumbnail: its tile footprint approximates its mask at 8 px


def clam_check(data: Path, ids: list[str], clam_dir: Path, python: Path, work: Path, seg_um: float,
               otsu: bool) -> dict[str, dict[str, float]]:
    """CLAM's own ``create_patches_fp.py`` on thumbnails ``ids`` (written as tiled TIFFs OpenSlide reads, segmented
    at their own level; area filters scaled to the mask pixels the emulation uses), Otsu or CLAM's fixed threshold:
    per slide the circled tissue and the ink-coloured pixels its tiles cover, and the area IoU of its tile footprint
    with the ``clam`` tissue model's mask (the emulation the other runs use)."""
    import h5py
    import tifffile

    src, out = work / "clam_src", work / f"clam_out_{'otsu' if otsu else 'fixed'}"
    src.mkdir(parents=True, exist_ok=True)
    for sid in ids:
        rgb, *_ = load(*thumbnail_paths(data, sid))
        tifffile.imwrite(src / f"m{sid}.tif", rgb, tile=(256, 256), photometric="rgb")
    unit = (512.0 / (seg_um / LEVEL0_UM)) ** 2 / 512.0**2  # one emulated area unit, in CLAM's 512x512 px units
    preset = clam_dir / "presets" / f"histcode_mskcc_{'otsu' if otsu else 'fixed'}.csv"
    preset.write_text(CLAM_PRESET_HEAD + f"-1,8,7,4,{otsu},none,none,{unit:.8f},{unit:.8f},8,-1,50,5,50,True,four_pt\n")
    subprocess.run([str(python), "create_patches_fp.py", "--source", str(src), "--save_dir", str(out), "--patch_size",
                    str(CLAM_CHECK_PX), "--step_size", str(CLAM_CHECK_PX), "--seg", "--patch", "--preset",
                    preset.name], cwd=clam_dir, capture_output=True, text=True, check=True)
    cfg = TileConfig.clam(use_otsu=otsu)
    rows = {}
    for sid in ids:
        rgb, _region, ink, circled = load(*thumbnail_paths(data, sid))
        with h5py.File(out / "patches" / f"m{sid}.h5") as f:
            coords = f["coords"][:]
        tiles = np.zeros(rgb.shape[:2], bool)
        for x, y in coords:
            tiles[y:y + CLAM_CHECK_PX, x:x + CLAM_CHECK_PX] = True
        mask = segment_tissue(rgb, seg_um / LEVEL0_UM, cfg, area_unit_px=512.0**2, seg_um=seg_um).mask
        rows[sid] = {"clam_circled_kept": float(tiles[circled].mean()), "clam_ink_in_tiles": float(tiles[ink].mean()),
                     "emulation_circled_kept": float(mask[circled].mean()),
                     "emulation_ink_in_mask": float(mask[ink].mean()),
                     "iou_clam_tiles_vs_emulation": float((tiles & mask).sum() / max((tiles | mask).sum(), 1))}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="PenAnnotationExtractor's data/ folder")
    other = ap.add_mutually_exclusive_group()
    other.add_argument("--before-src", type=Path, help="another checkout's src folder, run on the same thumbnails")
    ap.add_argument("--seg-um", type=float, nargs="+", default=[32.0], help="µm per thumbnail pixel (assumed)")
    ap.add_argument("--tile", nargs="*", metavar="KEY=VALUE", help="tile options for this run")
    other.add_argument("--baseline-tile", nargs="*", metavar="KEY=VALUE", help="tile options of a second run beside it")
    ap.add_argument("--baseline-label", default="before",
                    help="name of the second run in the figure (e.g. 'CLAM preset' with --baseline-tile)")
    ap.add_argument("--slides", choices=["all", "odd", "even"], default="all",
                    help="odd/even slide numbers only (round 29 developed on odd, reported on even)")
    ap.add_argument("--clam-dir", type=Path, help="a checkout of mahmoodlab/CLAM: its own create_patches_fp.py runs on "
                    "--clam-slides, with Otsu and with its fixed threshold, beside the emulation")
    ap.add_argument("--clam-python", type=Path, help="python of CLAM's own environment")
    ap.add_argument("--clam-slides", nargs="*", default=["00002", "00003", "00005", "00010", "00012"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/real_pen_regions.json"))
    args = ap.parse_args()
    result: dict[str, dict] = {}
    cfg = TileConfig().with_settings(args.tile)
    for um in args.seg_um:
        runs = {"now": run_all(args.data, um, cfg=cfg, parity=args.slides)}
        if args.before_src:
            runs["before"] = run_other(args.before_src.resolve(), args.data, um, args.slides)
        elif args.baseline_tile is not None:
            base = TileConfig().with_settings(args.baseline_tile)
            runs["before"] = run_all(args.data, um, cfg=base, parity=args.slides)
        res: dict[str, dict] = {tag: {"kept": summary(rows, "kept"), "ink_found": summary(rows, "ink_found"),
                                      "ink_in_mask": summary(rows, "ink_in_mask"),
                                      "band_in_mask": summary(rows, "band_in_mask"), "slides": rows}
                                for tag, rows in runs.items()}
        if "before" in runs:
            d = np.array([runs["now"][s]["kept"] - runs["before"][s]["kept"] for s in runs["now"]
                          if runs["now"][s]["kept"] is not None and runs["before"][s]["kept"] is not None])
            res["change"] = {"gained_0.05": int((d > 0.05).sum()), "lost_0.05": int((d < -0.05).sum()),
                             "unchanged": int((np.abs(d) < 1e-12).sum()), "largest_loss": float(d.min()),
                             "largest_gain": float(d.max())}
        result[f"{um:g}um"] = res
        for tag in runs:
            k, i, b = res[tag]["kept"], res[tag]["ink_found"], res[tag]["band_in_mask"]
            print(f"{um:g} um/px {tag:6s}: kept median {k['median']:.3f} mean {k['mean']:.4f} p10 {k['p10']:.3f} "
                  f"min {k['min']:.3f} <0.90 {k['below_0.90']}/{k['n']} <0.50 {k['below_0.50']}; ink found median "
                  f"{i['median']:.3f} mean {i['mean']:.4f} <0.90 {i['below_0.90']}/{i['n']}; dark band in mask "
                  f"mean {b['mean']:.3f}; ink-coloured pixels in the tissue mask mean "
                  f"{res[tag]['ink_in_mask']['mean']:.3f}")
        if "change" in res:
            print(f"{um:g} um/px change: {res['change']}")
    if args.clam_dir and args.clam_python:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            result["clam_check"] = {f"otsu_{otsu}": clam_check(args.data, args.clam_slides, args.clam_dir,
                                                               args.clam_python, Path(tmp), args.seg_um[0], otsu)
                                    for otsu in (True, False)}
        for key, rows in result["clam_check"].items():
            for sid, r in rows.items():
                print(f"CLAM itself, {key}, {sid}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    write_json(args.out, result)
    figure(result, args.data, args.seg_um[0], args.out.with_suffix(".jpg"), cfg, args.baseline_label)


if __name__ == "__main__":
    main()
