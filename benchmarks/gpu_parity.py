"""Do the GPU placements give the CPU's numbers? Stain normalisation and the JPEG augmentation moved onto the
accelerator (bench_gpu.py showed the CPU workers were the bound); this checks them against the CPU on real tiles.

* Macenko on the device vs on the CPU, same uint8 tiles: share of pixels that differ, largest difference (uint8
  levels), tiles whose "has tissue" decision differs;
* JPEG round trip through nvJPEG vs the CPU codec at the same quality: mean / 99th-percentile absolute difference.

    python benchmarks/gpu_parity.py --cohort-dir .gpu/cohort --out $OUT/gpu_parity.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from bench_gpu import load_cohort

    from histcode.slides.tile_dataset import SlideTileDataset, normalize_uint8
    from histcode.ssl import augment as A

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cohort-dir", type=Path, required=True)
    ap.add_argument("--tiles", type=int, default=512)
    ap.add_argument("--px", type=int, default=224)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_parity.json"))
    args = ap.parse_args()
    dev = torch.device(args.device)
    slides, normalize = load_cohort(args.cohort_dir, args.tiles)
    if normalize is None:
        raise SystemExit(f"{args.cohort_dir}: no stain_reference.json")
    ds = SlideTileDataset(slides, out_px=args.px)
    step = max(1, len(ds) // args.tiles)
    x = torch.stack([ds[i][0] for i in range(0, len(ds), step)][: args.tiles])
    cpu = normalize_uint8(x.clone(), normalize).int()
    gpu = normalize_uint8(x.to(dev), normalize).cpu().int()
    diff = (cpu - gpu).abs()
    changed_cpu = (cpu != x.int()).flatten(1).any(1)  # a tile left unchanged = judged to have no usable tissue
    changed_gpu = (gpu != x.int()).flatten(1).any(1)
    result = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "tiles": len(x),
              "px": args.px, "stain_pixels_differing_share": float((diff > 0).float().mean()),
              "stain_pixels_differing_by_more_than_1_share": float((diff > 1).float().mean()),
              "stain_max_abs_diff_levels": int(diff.max()),
              "stain_tissue_decision_differs": int((changed_cpu != changed_gpu).sum())}
    u8 = x[:64]
    q = 75
    via_cpu = torch.stack(A._jpeg_roundtrip([(q, list(u8))])).int()
    via_dev = torch.stack(A._jpeg_roundtrip([(q, list(u8.to(dev)))])).cpu().int()
    jd = (via_cpu - via_dev).abs().float()
    result.update(jpeg_device_codec=dev.type == "cuda" and not A._GPU_JPEG_FAILED, jpeg_quality=q,
                  jpeg_mean_abs_diff_levels=float(jd.mean()), jpeg_p99_abs_diff_levels=float(jd.quantile(0.99)),
                  jpeg_vs_original_mean_abs_levels=float((via_cpu - u8.int()).abs().float().mean()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print("ok" if np.isfinite(result["jpeg_mean_abs_diff_levels"]) else "nan")


if __name__ == "__main__":
    main()
