"""Look at what the ``histomics`` encoder counts on real H&E we did not make.

Real tiles: CMU-1-Small-Region (Aperio SVS, 0.499 µm/px; tests/data) read as extraction reads them (256 px at
0.5 µm/px, then ``--input-px``), and Kather et al.'s CRC-VAL-HE-7K normal-mucosa tile (224 px at 0.5 µm/px;
../shared/data). A Macenko reference is fitted on the CMU-1 tiles (as ``stain_ref`` fits one on a cohort) and
every tile is normalised with it before counting. The figure overlays the detected nucleus centres (small /
epithelial-sized / dark small) on each tile with its counts per mm²; the JSON holds every tile's 14 features,
and, for CMU-1, the densities at 1 µm/px (128 px, the demo's extraction) against 0.5 µm/px (256 px): physical
units should make them agree.

    python benchmarks/histomics_real_tiles.py --out docs/figures/histomics_real_tiles.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
CMU1 = ROOT / "tests" / "data" / "CMU-1-Small-Region.svs"
KATHER = ROOT / "tests" / "data" / "CRC-VAL-HE-7K-NORM-TCGA-YLVCMEHK.tif"


def cmu1_tiles(n: int) -> tuple[np.ndarray, float]:
    """The ``n`` CMU-1 tiles (256 px at 0.5 µm/px, uint8) with the most stained pixels, spread over the slide."""
    from histcode.slides.reader import SlideReader

    with SlideReader(CMU1) as r:
        mpp, (w, h) = r.mpp, r.dimensions
        size = round(256 * 0.5 / mpp)
        tiles, scores = [], []
        for y in range(0, h - size + 1, size):
            for x in range(0, w - size + 1, size):
                t = r.read_tile(x, y, size, 256)
                tiles.append(t)
                scores.append(float((t.astype(np.float32).mean(axis=2) < 200).mean()))
    order = np.argsort(scores)[::-1]
    picked = [order[0]]
    for i in order[1:]:  # every 3rd of the most tissue-rich tiles: different places, not neighbours
        if len(picked) == n:
            break
        if i % 3 == picked[-1] % 3:
            continue
        picked.append(i)
    return np.stack([tiles[i] for i in picked]), size * mpp


def to_batch(tiles: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(tiles).permute(0, 3, 1, 2).float().div_(255.0)


def main() -> None:
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from histcode.features.histomics import FEATURES, HistomicsEncoder
    from histcode.slides.stain import create_normalizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-cmu1", type=int, default=3)
    ap.add_argument("--out", default="docs/figures/histomics_real_tiles.png")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cmu, side_um = cmu1_tiles(args.n_cmu1)
    norm = create_normalizer("macenko").fit(list(cmu))
    kather = cv2.cvtColor(cv2.imread(str(KATHER), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    sets = [(f"CMU-1 #{i + 1}", cmu[i], side_um / 256) for i in range(len(cmu))]
    sets.append(("Kather CRC-VAL-HE-7K normal mucosa", kather, 0.5))
    he, max_c = norm.he_ref.tolist(), norm.max_c_ref.tolist()
    rows = []
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 4.9))
    for ax, (name, tile, um_per_px) in zip(axes, sets, strict=True):
        x = norm.transform_batch(to_batch(tile[None]))
        enc = HistomicsEncoder(he, max_c, um_per_px=um_per_px).eval()
        with torch.no_grad():
            f = dict(zip(FEATURES, enc(x)[0].tolist(), strict=True))
        maps = enc.nuclei_maps(x)
        ax.imshow(tile)
        for key, marker, colour in (("large", "o", "yellow"), ("small", "+", "cyan"), ("dark", "x", "red")):
            yy, xx = np.nonzero(maps[key][0].numpy())
            ax.scatter(xx, yy, s=28 if key == "large" else 16, marker=marker, facecolors="none" if marker == "o"
                       else colour, edgecolors=colour if marker == "o" else None, linewidths=0.9,
                       label={"large": "epithelial-sized (σ 3.5 µm)", "small": "small (σ 2 µm)",
                              "dark": "dark small"}[key])
        ax.set_title(f"{name}\n{tile.shape[0] * um_per_px:.0f} µm at {um_per_px:.3g} µm/px; tissue "
                     f"{f['tissue_frac']:.0%}\nnuclei {f['nuclei_large_k_mm2']:.1f}k (epith.) / "
                     f"{f['nuclei_small_k_mm2']:.1f}k (small) per mm²", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        rows.append({"tile": name, "um_per_px": um_per_px, **{k: round(v, 4) for k, v in f.items()}})
    axes[0].legend(loc="lower left", fontsize=6, framealpha=0.8)
    fig.suptitle("histomics: detected nucleus centres on real H&E (stain-normalised to a Macenko reference fitted on "
                 "the CMU-1 tiles)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    # physical units on real tissue: the CMU-1 tiles at 1 µm/px (the demo's 128-px extraction) vs 0.5 µm/px
    small = np.stack([cv2.resize(t, (128, 128), interpolation=cv2.INTER_AREA) for t in cmu])
    enc_fine = HistomicsEncoder(he, max_c, um_per_px=side_um / 256).eval()
    enc_coarse = HistomicsEncoder(he, max_c, um_per_px=side_um / 128).eval()
    with torch.no_grad():
        fine = enc_fine(norm.transform_batch(to_batch(cmu))).numpy()
        coarse = enc_coarse(norm.transform_batch(to_batch(small))).numpy()
    ratio = {n: round(float(coarse[:, j].mean() / max(fine[:, j].mean(), 1e-9)), 3) for j, n in enumerate(FEATURES)
             if n.endswith(("_k_mm2", "_frac"))}
    print(json.dumps(rows, indent=1))
    print("CMU-1, 1 µm/px over 0.5 µm/px (mean of the tiles):", ratio)
    out.with_suffix(".json").write_text(json.dumps({"tiles": rows, "cmu1_coarse_over_fine": ratio}, indent=1))


if __name__ == "__main__":
    main()
