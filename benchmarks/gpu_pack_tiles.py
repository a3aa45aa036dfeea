"""Pack every tile of a tiled cohort at 128 px as JPEG into one HDF5 file, small enough to carry to a lent GPU
machine (the demo cohort: 10,198 tiles, 43 MB at quality 80) for ``benchmarks/gpu_ssl_world.py``.

    python benchmarks/gpu_pack_tiles.py --cohort tcga_synth --out .gpu/exp/tiles128.h5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import h5py
import numpy as np
from torch.utils.data import DataLoader


def main() -> None:
    from histcode.config import base, load_params
    from histcode.paths import Paths
    from histcode.slides.cohort_tiles import collect_slides
    from histcode.slides.tile_dataset import SlideTileDataset, TileCollate, worker_init

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cohort", default="tcga_synth")
    ap.add_argument("--px", type=int, default=128)
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--out", type=Path, default=Path(".gpu/exp/tiles128.h5"))
    args = ap.parse_args()
    paths = Paths.from_base(base(load_params(args.params)))
    slides, failures = collect_slides(args.cohort, paths=paths)
    if failures:
        raise SystemExit(f"{len(failures)} slides have no usable coords: {failures[:3]}; tile the cohort first")
    loader = DataLoader(SlideTileDataset(slides, out_px=args.px), batch_size=256, num_workers=2,
                        collate_fn=TileCollate(None), worker_init_fn=worker_init)
    blobs = []
    for tiles, errors in loader:
        if any(errors):
            raise SystemExit(f"tile reads failed: {next(e for e in errors if e)}")
        for rgb in tiles.permute(0, 2, 3, 1).numpy():
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, args.quality])
            if not ok:
                raise SystemExit(f"JPEG encoding failed for a tile of shape {rgb.shape}")
            blobs.append(buf.ravel())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(args.out, "w") as f:
        data = f.create_dataset("jpeg", (len(blobs),), dtype=h5py.vlen_dtype(np.uint8))
        for i, blob in enumerate(blobs):
            data[i] = blob
        f.create_dataset("n_tiles", data=np.array([s.n for s in slides]))
        f.create_dataset("slide_id", data=np.array([s.slide_id for s in slides], dtype=h5py.string_dtype()))
        f.create_dataset("coords", data=np.concatenate([s.coords for s in slides]))
    print(f"{len(blobs)} tiles of {len(slides)} slides → {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
