"""Red marker on real slides, with truth: how much of it the pen mask finds, and how much red tissue it takes.

No real slide set here has red marker with a hand-drawn mask of it, and the generator draws no red ink, so the
red-ink rule (``mask._red_ink``) could so far only be checked on four real thumbnails by eye. This benchmark makes
the missing truth from real parts:

* the tissue, glass, blood, stain and other inks are those of MSKCC PenAnnotationExtractor's 319 real thumbnails
  (MIT; Schüffler et al., J Pathol Inform 2021; the data ``real_pen_regions.py`` reads);
* the strokes are real too: each thumbnail gets the pen strokes a pathologist drew on another thumbnail of the same
  parity (the next one with at least ``MIN_STROKE_PX`` stroke pixels), resized to it;
* the ink is a red marker calibrated on the real red markers in ``tests/data`` (python-wsi-preprocessing's
  slide-pen.png, histolab's tcga-red-pen.png): its optical-density direction is their median, its density per
  slide is drawn between their 10th and 90th percentiles and varies smoothly along the slide (x0.7-1.2), and its
  edge is soft (Gaussian, sigma 1.2 px). It is laid over the thumbnail by Beer-Lambert, so over tissue it darkens
  the tissue as real ink does.

Per slide: ``red_found`` = share of the painted marker (coverage >= 0.5) the pen mask calls ink; ``red_in_mask`` =
share of it left in the tissue mask; and, on the unpainted thumbnail, ``red_tissue_as_ink`` = share of its strongly
red stained pixels (blood, heavy eosin: hue 344-14 deg, saturation >= 110, brightness >= 60, further than 15 px from
any ink-coloured pixel) that the pen mask calls ink. Odd-numbered thumbnails were the development half in rounds
29-35; even-numbered ones the report half. ``--tile KEY=VALUE`` / ``--baseline-tile KEY=VALUE`` as in
``real_pen_regions.py``:

    python benchmarks/real_red_marker.py --data /path/to/PenAnnotationExtractor/data \
        --out benchmarks/results/real_red_marker.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from histcode.atomic import write_json
from histcode.slides.config import TileConfig
from histcode.slides.mask import TissueMask, segment_tissue

sys.path.insert(0, str(Path(__file__).parent))
import real_pen_regions as pens  # the same thumbnails, pairs and ink colours

ROOT = Path(__file__).resolve().parents[1]
MARKERS = (ROOT / "tests" / "data" / "python-wsi-preprocessing_slide-pen.png",
           ROOT / "tests" / "data" / "histolab_tcga-red-pen.png")
MIN_STROKE_PX = 500  # a thumbnail lends its strokes when they cover at least this many pixels
SEG_UM = 32.0


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def marker_calibration() -> tuple[np.ndarray, tuple[float, float]]:
    """(unit-sum OD direction, (p10, p90) of OD sum) of the strongly red pixels of the real red markers."""
    ods = []
    for path in MARKERS:
        rgb = _rgb(path)
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        glass = np.median(rgb[(s < 15) & (v > 200)].astype(float), axis=0)
        red = ((h <= 7) | (h >= 172)) & (s >= 150)
        ods.append(-np.log10(np.clip(rgb[red].astype(float) / glass, 1e-3, 1.0)))
    od = np.concatenate(ods)
    direction = np.median(od, axis=0)
    total = od.sum(1)
    return direction / direction.sum(), (float(np.percentile(total, 10)), float(np.percentile(total, 90)))


def strokes(rgb: np.ndarray) -> np.ndarray:
    """The pen strokes of a real thumbnail: its ink-coloured pixels, opened, in components >= 200 px."""
    ink = cv2.morphologyEx(pens.ink_coloured(rgb).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= 200
    return keep[labels]


def paint(rgb: np.ndarray, stroke: np.ndarray, seed: int, direction: np.ndarray,
          density: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, float]:
    """(thumbnail with a red marker along ``stroke`` (any size, resized), marker truth, the slide's density)."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    m = cv2.resize(stroke.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    coverage = cv2.GaussianBlur(m, (0, 0), 1.2)
    base = float(rng.uniform(*density))
    field = cv2.resize(rng.uniform(0.7, 1.2, (8, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    od = (base * field * coverage)[..., None] * direction
    out = np.clip(rgb.astype(np.float32) * 10.0 ** (-od), 0, 255).round().astype(np.uint8)
    return out, coverage >= 0.5, base


def red_tissue(rgb: np.ndarray) -> np.ndarray:
    """Strongly red stained pixels (blood, heavy eosin) further than 15 px from any ink-coloured pixel."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    near_ink = cv2.dilate(pens.ink_coloured(rgb).astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    return ((h <= 7) | (h >= 172)) & (s >= 110) & (v >= 60) & ~near_ink


def _seg(rgb: np.ndarray, cfg: TileConfig) -> TissueMask:
    return segment_tissue(rgb, SEG_UM / pens.LEVEL0_UM, cfg, area_unit_px=512.0**2, seg_um=SEG_UM)


def run_all(data: Path, cfg: TileConfig, progress: bool = True, parity: str = "all",
            density: tuple[float, float] | None = None) -> dict[str, dict]:
    """Per thumbnail of ``parity`` (all, odd, even): the measures of the module docstring; ``density``: the range
    of the marker's OD sum instead of the calibrated one (fainter markers)."""
    direction, calibrated = marker_calibration()
    density = density or calibrated
    everything = pens.pairs(data)
    thumbs = {sid: t for sid, t, _label in everything}
    items = [p for p in everything if parity == "all" or int(p[0]) % 2 == (parity == "odd")]
    lenders = {p: [sid for sid in thumbs if int(sid) % 2 == p] for p in (0, 1)}
    stroke_cache: dict[str, np.ndarray] = {}
    rows: dict[str, dict] = {}
    for i, (sid, thumb, _label) in enumerate(items, 1):
        rgb = _rgb(thumb)
        group = lenders[int(sid) % 2]
        k = group.index(sid)
        for step in range(1, len(group)):  # the next thumbnail of the same parity whose strokes are large enough
            src = group[(k + step) % len(group)]
            if src not in stroke_cache:
                stroke_cache[src] = strokes(_rgb(thumbs[src]))
            if stroke_cache[src].sum() >= MIN_STROKE_PX:
                break
        painted, truth, base = paint(rgb, stroke_cache[src], int(sid), direction, density)
        tm = _seg(painted, cfg)
        red = red_tissue(rgb)
        tm0 = _seg(rgb, cfg) if red.sum() >= 100 else None
        rows[sid] = {"stroke_from": src, "density": base, "marker_px": int(truth.sum()),
                     "red_found": float(tm.pen[truth].mean()) if truth.sum() >= 100 else None,
                     "red_in_mask": float(tm.mask[truth].mean()) if truth.sum() >= 100 else None,
                     "red_tissue_px": int(red.sum()),
                     "red_tissue_as_ink": float(tm0.pen[red].mean()) if tm0 is not None else None}
        if progress and (i % 50 == 0 or i == len(items)):
            print(f"  {i}/{len(items)} thumbnails", file=sys.stderr, flush=True)
    return rows


def summary(rows: dict[str, dict], key: str) -> dict[str, float | int]:
    x = np.array([r[key] for r in rows.values() if r[key] is not None], float)
    return {"n": int(x.size), "mean": float(x.mean()), "median": float(np.median(x)),
            "p10": float(np.percentile(x, 10)), "min": float(x.min()), "max": float(x.max()),
            "below_0.90": int((x < 0.90).sum()), "below_0.50": int((x < 0.50).sum()),
            "above_0.10": int((x > 0.10).sum())}


def halves(rows: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for name, parity in (("odd (development)", 1), ("even (report)", 0)):
        part = {k: v for k, v in rows.items() if int(k) % 2 == parity}
        if not part:
            continue
        out[name] = {key: summary(part, key) for key in ("red_found", "red_in_mask", "red_tissue_as_ink")}
    return out


def figure(runs: dict[str, dict], data: Path, cfg: TileConfig, out: Path,
           density: tuple[float, float] | None = None, labels: dict[str, str] | None = None) -> None:
    """Left: marker found per slide, sorted; middle: red tissue taken as ink per slide, sorted; right: the three
    slides whose marker is found least (this run), pen mask in blue, missed marker in green."""
    import matplotlib.pyplot as plt

    direction, calibrated = marker_calibration()
    density = density or calibrated
    now = runs["now"]
    worst = sorted((k for k in now if now[k]["red_found"] is not None), key=lambda k: now[k]["red_found"])[:3]
    fig, axes = plt.subplots(1, 5, figsize=(24, 5), gridspec_kw={"width_ratios": [1, 1, 1.2, 1.2, 1.2]})
    for tag, rows in runs.items():
        for ax, key in zip(axes[:2], ("red_found", "red_tissue_as_ink"), strict=True):
            x = np.sort([r[key] for r in rows.values() if r[key] is not None])
            ax.plot(np.arange(1, x.size + 1), x, label=f"{(labels or {}).get(tag, tag)} (n={x.size})")
    axes[0].set(title="Painted red marker found as ink", xlabel="slides, sorted", ylabel="share of marker pixels",
                ylim=(-0.02, 1.02))
    axes[1].set(title="Red tissue (blood, heavy eosin) taken as ink", xlabel="slides, sorted",
                ylabel="share of strongly red tissue pixels", ylim=(-0.02, 1.02))
    for ax in axes[:2]:
        ax.legend(loc="center right")
        ax.grid(alpha=0.3)
    for ax, sid in zip(axes[2:], worst, strict=False):
        stroke = strokes(_rgb(data / "thumbnails" / f"thumbnail_{now[sid]['stroke_from']}.jpg"))
        painted, truth, _ = paint(_rgb(data / "thumbnails" / f"thumbnail_{sid}.jpg"), stroke, int(sid), direction,
                                  density)
        tm = _seg(painted, cfg)
        view = painted.copy()
        view[tm.pen] = (0.5 * view[tm.pen] + [0, 0, 127]).astype(np.uint8)
        view[truth & ~tm.pen] = (0, 255, 0)
        ax.imshow(view)
        ax.set_title(f"thumbnail {sid}: found {now[sid]['red_found']:.2f}\n(blue: pen mask; green: marker missed)")
        ax.axis("off")
    lo, hi = density
    fig.suptitle(f"Red marker (OD sum {lo:.2f}-{hi:.2f}) painted along real pen strokes on {len(now)} real MSKCC "
                 f"thumbnails ({SEG_UM:g} µm/px)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="PenAnnotationExtractor's data/ folder")
    ap.add_argument("--tile", nargs="*", metavar="KEY=VALUE", help="tile options for this run")
    ap.add_argument("--baseline-tile", nargs="*", metavar="KEY=VALUE", help="tile options of a second run beside it")
    ap.add_argument("--slides", choices=["all", "odd", "even"], default="all",
                    help="odd/even thumbnail numbers only (development / report halves)")
    ap.add_argument("--density", type=float, nargs=2, metavar=("LOW", "HIGH"),
                    help="the marker's OD-sum range instead of the calibrated one (e.g. 0.5 1.2: a fainter marker)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/real_red_marker.json"))
    args = ap.parse_args()
    cfg = TileConfig().with_settings(args.tile)
    density = tuple(args.density) if args.density else None
    runs = {"now": run_all(args.data, cfg, parity=args.slides, density=density)}
    if args.baseline_tile is not None:
        runs["baseline"] = run_all(args.data, TileConfig().with_settings(args.baseline_tile), parity=args.slides,
                                   density=density)
    direction, calibrated = marker_calibration()
    result = {"calibration": {"od_direction": direction.tolist(), "od_sum_p10_p90": calibrated},
              "density": list(density or calibrated),
              **{tag: {"halves": halves(rows), "slides": rows} for tag, rows in runs.items()}}
    for tag in runs:
        for half, res in result[tag]["halves"].items():
            f, t = res["red_found"], res["red_tissue_as_ink"]
            print(f"{tag:8s} {half:18s}: marker found mean {f['mean']:.3f} median {f['median']:.3f} min {f['min']:.3f}"
                  f" <0.90 {f['below_0.90']}/{f['n']}; in mask mean {res['red_in_mask']['mean']:.3f}; red tissue as"
                  f" ink mean {t['mean']:.3f} max {t['max']:.3f} >0.10 {t['above_0.10']}/{t['n']}")
    write_json(args.out, result)
    labels = {"now": " ".join(args.tile or []) or "defaults",
              "baseline": " ".join(args.baseline_tile or []) or "defaults"}
    figure(runs, args.data, cfg, args.out.with_suffix(".png"), density, labels)


if __name__ == "__main__":
    main()
