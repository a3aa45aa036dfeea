"""The tissue mask on the real slide thumbnails with ink in tests/data, at the segmentation scale, with numbers.

Each thumbnail is segmented as the tile stage segments a slide (at the scale its tests use) and drawn in the QC
picture's colours. Measured per thumbnail: the share of its strongly red pixels that are ink (red markers), the
share of the tissue inside closed ink rings that is in the mask (rings drawn around regions), and the shares of its
strongly blue and green pixels that are ink. ``--before-src`` segments the same thumbnails with
another checkout's ``src`` (in a subprocess, so two code versions never share a process) and draws both, as
``docs/figures/tissue_ink_rings.jpg`` shows for round 28's ink-ring fix:

    python benchmarks/real_ink_thumbnails.py --before-src /path/to/old/checkout/src \
        --out benchmarks/results/real_ink_thumbnails
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from histcode.atomic import write_json
from histcode.slides.config import TileConfig
from histcode.slides.mask import segment_tissue
from histcode.slides.render import render_mask

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
# file in tests/data (provenance in tests/data/PROVENANCE.md) → (what its ink is, level-0 px per thumbnail px,
# µm per thumbnail px): the scales its tests in tests/slides/test_mask.py segment it at
THUMBS = {
    "histolab_diagnostic-slide-thumb-rgb.png": ("black ink rings, red and green markers", 128.0, 32.0),
    "histolab_tcga-red-pen.png": ("red marker over tissue, a magnified crop", 10.0, 5.0),
    "python-wsi-preprocessing_slide-pen.png": ("wide red marker over tissue and glass", 128.0, 32.0),
    "histolab_wsi-blue-pen.png": ("blue marker on glass", 64.0, 16.0),
    "python-wsi-preprocessing_s337-green-ring.png": ("green ink ring on the glass around the tumour", 128.0, 32.0),
}


def ring_enclosed(pen: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Non-white pixels inside a hole of the ink mask: the tissue a closed ink ring encircles."""
    cs, hier = cv2.findContours(pen.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    inner = [c for c, h in zip(cs, hier[0], strict=True) if h[3] >= 0] if hier is not None else []
    filled = np.zeros(pen.shape, np.uint8)
    cv2.drawContours(filled, inner, -1, 1, cv2.FILLED)
    return filled.astype(bool) & ~pen & (rgb.min(2) < 200)


def measure(name: str, qc_png: Path) -> dict[str, float | int | None]:
    """Segment one thumbnail with the code importable here; write its QC picture; return the shares."""
    rgb = cv2.cvtColor(cv2.imread(str(DATA / name)), cv2.COLOR_BGR2RGB)
    _what, downsample, seg_um = THUMBS[name]
    tm = segment_tissue(rgb, downsample, TileConfig(), area_unit_px=512.0**2, seg_um=seg_um)
    cv2.imwrite(str(qc_png), render_mask(rgb, tm, np.zeros((0, 2), int), 512, title=name))
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    red = ((hsv[..., 0] <= 7) | (hsv[..., 0] >= 172)) & (hsv[..., 1] >= 150)
    blue = (hsv[..., 0] >= 100) & (hsv[..., 0] <= 130) & (hsv[..., 1] >= 120)
    green = (hsv[..., 0] >= 70) & (hsv[..., 0] <= 95) & (hsv[..., 1] >= 80)
    ring = ring_enclosed(tm.pen, rgb)

    def share(sel: np.ndarray, of: np.ndarray) -> float | None:
        return float(of[sel].mean()) if sel.sum() >= 100 else None  # too few pixels: not this thumbnail's ink

    return {"tissue_fraction": float(tm.mask.mean()), "red_px": int(red.sum()), "red_ink": share(red, tm.pen),
            "ring_px": int(ring.sum()), "ring_kept": share(ring, tm.mask), "blue_px": int(blue.sum()),
            "blue_ink": share(blue, tm.pen), "green_px": int(green.sum()), "green_ink": share(green, tm.pen)}


def run_all(out_dir: Path, tag: str) -> dict[str, dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {n: measure(n, out_dir / f"{tag}_{Path(n).stem}.png") for n in THUMBS}


def run_other(src: Path, out_dir: Path) -> dict[str, dict]:
    """``run_all`` with another ``src`` first on the path, in a child process (its imports resolve there)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import real_ink_thumbnails as r;"
            f" from pathlib import Path; print(json.dumps(r.run_all(Path({str(out_dir)!r}), 'before')))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def figure(names: list[str], out: Path, qc_dir: Path, before: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 3 if before else 2
    fig, axes = plt.subplots(len(names), cols, figsize=(5 * cols, 4.6 * len(names)), squeeze=False)
    for row, n in zip(axes, names, strict=True):
        row[0].imshow(cv2.cvtColor(cv2.imread(str(DATA / n)), cv2.COLOR_BGR2RGB))
        what, downsample, seg_um = THUMBS[n]
        row[0].set_title(f"{n}\n({what}; {downsample:g}x, {seg_um:g} µm/px)", fontsize=9)
        panels = (("before", "with --before-src"), ("now", "this checkout")) if before else (("now", "this checkout"),)
        for ax, (tag, label) in zip(row[1:], panels, strict=True):
            ax.imshow(cv2.cvtColor(cv2.imread(str(qc_dir / f"{tag}_{Path(n).stem}.png")), cv2.COLOR_BGR2RGB))
            ax.set_title(f"mask, {label}", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Tissue mask on real thumbnails with ink, in the tile stage's QC colours")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=72, pil_kwargs={"quality": 88})  # JPEG: four photographs (a PNG is 1.5 MB)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before-src", type=Path, help="another checkout's src folder, drawn and measured beside")
    ap.add_argument("--out", default="benchmarks/results/real_ink_thumbnails", help="path stem of the .json/.jpg")
    args = ap.parse_args()
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        qc = Path(tmp)
        result = {"now": run_all(qc, "now")}
        if args.before_src:
            result["before"] = run_other(args.before_src.resolve(), qc)
        figure(list(THUMBS), out.with_suffix(".jpg"), qc, before=args.before_src is not None)
    write_json(out.with_suffix(".json"), result)
    for tag, rows in result.items():
        for n, r in rows.items():
            shares = ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k.endswith(("_ink", "_kept")) and v is not None)
            print(f"{tag:6s} {n}: {shares}")


if __name__ == "__main__":
    main()
