"""DE stage throughput against the bound that limits each part, measured in the same run.

* DE inputs (``build_de_inputs``): per slide, read features + attention h5 and average the top/bottom-l
  tiles. Bound: reading the same h5 datasets alone, as stored (float16). efficiency = read-only time /
  build time (ranking, checks and averaging should cost little next to reading).
* Per-gene MIL inference (``GeneAttentionMIL.attend``, streamed chunks): bound: the same bag through the
  model's dense layers as plain matmuls (``x @ W1``, ``e @ [V|U]``) with no pooling or bookkeeping.
  efficiency = bound time / attend time.

    python benchmarks/bench_de.py                          # CPU demo sizes
    python benchmarks/bench_de.py --slides 16 --tiles 20000 --dim 1024 --hidden 512 --attn 256   # paper-like
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch


def _write_cohort(root: Path, slides: int, tiles: int, dim: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(slides):
        sid = f"S{i:03d}"
        coords = np.stack([np.arange(tiles) % 512, np.arange(tiles) // 512], 1).astype(np.int32) * 256
        with h5py.File(root / "f" / f"{sid}.h5", "w") as fh:
            fh["features"] = rng.normal(size=(tiles, dim)).astype(np.float16)
            fh["coords"] = coords
        with h5py.File(root / "a" / f"{sid}.h5", "w") as fh:
            fh["coords"] = coords
            fh["attention_raw"] = rng.normal(size=tiles).astype(np.float32)
            fh["attention"] = np.full(tiles, 1.0 / tiles, np.float32)
        rows.append({"slide_id": sid, "patient_id": f"P{i:03d}", "label": 1})
    return pd.DataFrame(rows)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from histcode.genes.gene_mil import GeneAttentionMIL
    from histcode.genes.inputs import build_de_inputs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slides", type=int, default=8)
    ap.add_argument("--tiles", type=int, default=4000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--attn", type=int, default=64)
    ap.add_argument("--top-l", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/bench_de.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f").mkdir()
        (root / "a").mkdir()
        manifest = _write_cohort(root, args.slides, args.tiles, args.dim, 0)
        patients = manifest["patient_id"].tolist()

        def read_only() -> None:
            for sid in manifest["slide_id"]:
                with h5py.File(root / "f" / f"{sid}.h5", "r") as fh:
                    fh["features"][:]
                    fh["coords"][:]
                with h5py.File(root / "a" / f"{sid}.h5", "r") as fh:
                    fh["attention_raw"][:]
                    fh["coords"][:]

        def build() -> None:
            build_de_inputs(manifest, patients, root / "f", root / "a", top_l=args.top_l, bottom_l=args.top_l,
                            progress=False)

        t_read, t_build = _best(read_only, args.repeats), _best(build, args.repeats)

    n_tiles = args.slides * args.tiles
    torch.manual_seed(0)
    model = GeneAttentionMIL(args.dim, hidden=args.hidden, attn_hidden=args.attn).eval()
    bag = np.random.default_rng(1).normal(size=(args.tiles, args.dim)).astype(np.float32)
    x = torch.from_numpy(bag)
    w1 = model.pool.embed[0].weight.detach().T.contiguous()
    wvu = torch.cat([model.pool.attn_v[0].weight, model.pool.attn_u[0].weight]).detach().T.contiguous()

    @torch.no_grad()
    def dense_only() -> None:
        e = torch.relu(x @ w1)
        e @ wvu

    t_dense = _best(dense_only, args.repeats)
    t_attend = _best(lambda: model.attend(bag), args.repeats)
    flops = 2 * args.tiles * (args.dim * args.hidden + 2 * args.hidden * args.attn)
    result = {
        "config": vars(args), "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "de_inputs": {"tiles_per_s": n_tiles / t_build, "read_only_tiles_per_s": n_tiles / t_read,
                      "feature_MB_per_s": n_tiles * args.dim * 2 / 1e6 / t_build,
                      "efficiency_vs_read_bound": t_read / t_build},
        "gene_mil_attend": {"tiles_per_s": args.tiles / t_attend, "dense_bound_tiles_per_s": args.tiles / t_dense,
                            "GFLOP_per_s": flops / t_attend / 1e9,
                            "efficiency_vs_dense_bound": t_dense / t_attend},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
