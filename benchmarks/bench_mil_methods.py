"""MIL methods: peak memory and time of inference on a 100k-tile bag per method, and train_mil's wall time
and Table 1 on a demo-sized feature cohort.

``memory``: each method's model (paper sizes: 1024-d features, hidden 512, attention 256) predicts one
N-tile bag streamed from an h5 file, in a fresh subprocess; we report the peak RSS growth over the loaded
model (``VmHWM`` reset after a warm-up) and the wall time. ``cohort``: writes a synthetic feature cohort
shaped like the demo's (24 patients, 48 slides, ~210 tiles/slide, 256-d, features of two encoders: a
planted tumour direction in ``adco``, a weak one in ``random``), then runs the real ``train_mil`` stage
on it with the demo's ``mil`` params (``--baselines`` to time a subset, e.g. today's three). Usage:

    python benchmarks/bench_mil_methods.py memory --tiles 100000 --dim 1024 --out benchmarks/results/mil_memory.json
    python benchmarks/bench_mil_methods.py cohort --seed 1 --work /tmp/milbench --out benchmarks/results/mil_cohort.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
import yaml
from bench_mil import write_bag  # the 100k-tile bag of the MIL memory benchmark (this folder is on sys.path)

_CHILD = r"""
import json, re, sys, time, torch
torch.set_num_threads(int(sys.argv[3]))
from itertools import islice
from histcode.mil.bags import iter_bag_chunks
from histcode.mil.inference import predict_file
from histcode.mil.model import load_mil

def status(key):
    return int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024

m = load_mil(sys.argv[2])
m.predict_stream(list(islice(iter_bag_chunks(sys.argv[1], 4096), 1)))  # warm-up: code pages
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
t = time.perf_counter()
out = predict_file(m, sys.argv[1], chunk_tiles=int(sys.argv[4]))
print(json.dumps({"peak_mb": status("VmHWM") - before, "seconds": time.perf_counter() - t,
                  "n_scores": int(out.weights.shape[0])}))
"""

PAPER = {"hidden": 512, "attn_hidden": 256, "dropout": 0.0, "heads": 8, "landmarks": 256}


def memory(args: argparse.Namespace) -> dict:
    from histcode.mil.model import MilClassifier, save_mil
    from histcode.mil.pooling import create_pooling, pooling_names

    out: dict = {"tiles": args.tiles, "dim": args.dim, "threads": args.threads, "chunk_tiles": args.chunk,
                 "settings": PAPER, "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag.h5"
        write_bag(bag, args.tiles, args.dim)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        for name in args.methods or pooling_names():
            torch.manual_seed(0)
            model = MilClassifier(create_pooling(name, args.dim, **PAPER))
            save_mil(model, Path(tmp) / name)
            res = subprocess.run([sys.executable, "-c", _CHILD, str(bag), str(Path(tmp) / name),
                                  str(args.threads), str(args.chunk)], capture_output=True, text=True, env=env)
            if res.returncode != 0:
                out["methods"][name] = {"error": res.stderr.strip().splitlines()[-1]}
            else:
                out["methods"][name] = json.loads(res.stdout.strip().splitlines()[-1])
            print(name, out["methods"][name], flush=True)
    return out


def write_cohort(root: Path, *, seed: int, n_patients: int = 24, dim: int = 256, cohort: str = "bench") -> None:
    """Demo-shaped features: tumour slides hold 15-45 % tiles shifted along a planted direction (adco) or a
    weak one (random); every patient has a tumour slide and all but every 12th a normal one."""
    rng = np.random.default_rng(seed)
    rows = []
    strength = {"adco": 0.25, "random": 0.08}
    dirs = {e: rng.normal(size=dim) / np.sqrt(dim) * 8 for e in strength}
    for p in range(n_patients):
        pid = f"TCGA-BB-{p:04d}"
        for label in [1, 0] if p % 12 else [1]:
            sid = f"{pid}-{'01' if label else '11'}Z-00-DX1"
            n = int(rng.integers(120, 300))
            frac = rng.uniform(0.15, 0.45) if label else 0.0
            tumour = rng.random(n) < frac
            base = rng.normal(size=(n, dim))
            for enc, s in strength.items():
                feats = base + rng.normal(size=(n, dim)) * 0.5 + np.outer(tumour, dirs[enc]) * s
                path = root / "data" / "features" / cohort / enc / f"{sid}.h5"
                path.parent.mkdir(parents=True, exist_ok=True)
                with h5py.File(path, "w") as f:
                    f["features"] = feats.astype(np.float16)
                    xs, ys = np.meshgrid(np.arange(20), np.arange(20))
                    f["coords"] = (np.stack([xs.ravel(), ys.ravel()], 1)[:n] * 256).astype(np.int32)
            rows.append({"slide_id": sid, "path": f"slides/{sid}.tiff", "patient_id": pid, "cohort": cohort,
                         "sample_type": "Primary Tumor" if label else "Solid Tissue Normal", "label": label,
                         "mpp": 0.5})
    mdir = root / "data" / "manifests" / cohort
    mdir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(mdir / "slides.csv", index=False)


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its finished children (the fold workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def cohort(args: argparse.Namespace) -> dict:
    root = Path(args.work).resolve()
    root.mkdir(parents=True, exist_ok=True)
    write_cohort(root, seed=args.seed)
    demo = yaml.safe_load(Path(args.params).resolve().read_text())
    mil = {**demo["mil"], "progress": False}
    if args.baselines:
        mil["baselines"] = args.baselines.split(",")
        mil["pooling"] = mil["baselines"][0]
    cohorts = {"bench": {"kind": "gdc", "source_dir": "x", "slide_dir": "x", "role": "train"}}
    params = {"base": {"seed": args.seed, "train_cohort": "bench", "cohorts": cohorts},
              "extract": {"encoders": args.encoders.split(",")}, "mil": mil}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    os.chdir(root)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    from histcode.mil.stage import run_train_mil

    t0, cpu0 = time.perf_counter(), _cpu_s()
    metrics = run_train_mil("params.yaml")
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    table = root / "reports" / "mil" / "table1.md"
    return {"seed": args.seed, "wall_s": wall, "cpu_s": cpu, "metrics": metrics,
            "table1_md": table.read_text() if table.exists() else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--tiles", type=int, default=100_000)
    m.add_argument("--dim", type=int, default=1024)
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--chunk", type=int, default=8192)
    m.add_argument("--methods", nargs="*")
    c = sub.add_parser("cohort")
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--work", default="/tmp/milbench")
    c.add_argument("--encoders", default="adco,random")
    c.add_argument("--baselines", default="", help="comma list replacing mil.baselines (first = primary)")
    c.add_argument("--params", default=str(Path(__file__).resolve().parents[1] / "params.yaml"),
                   help="params file whose mil section is used (the demo's by default)")
    for p in (m, c):
        p.add_argument("--out", type=Path)
    args = ap.parse_args()
    res = memory(args) if args.cmd == "memory" else cohort(args)
    text = json.dumps(res, indent=1, default=float)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text if args.cmd == "memory" else f"wall {res['wall_s']:.1f} s, cpu {res['cpu_s']:.1f} s\n{res['table1_md']}")


if __name__ == "__main__":
    main()
