"""Extraction throughput against its two bounds, measured in the same run, and peak memory vs slide size.

* decode-only: the extraction DataLoader (same workers, batches, OpenSlide reads, stain normalisation in
  the workers) with no model;
* compute-only: the encoder (bf16, channels_last) on one batch already in memory;
* extraction: ``extract_slides`` end to end into a temp dir.
efficiency = extraction tiles/s / min(decode, compute); goal ≥ 0.8. When decode workers and compute share
the same few cores, the attainable rate is the serial bound 1 / (1/decode + 1/compute); its efficiency is
reported too. Peak memory: one slide's coords
repeated to N and 4N tiles, each extracted in a fresh process (peak RSS of main + workers).

    python benchmarks/bench_extract.py --cohort tcga_synth --encoder random --max-tiles 3000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _setup(params: str, cohort: str | None, encoder: str, max_tiles: int) -> tuple[Any, ...]:
    from histcode.config import base, load_params, section
    from histcode.features.config import ExtractConfig
    from histcode.features.encoders import resolve_encoder
    from histcode.paths import Paths
    from histcode.precision import resolve_bf16
    from histcode.slides.cohort_tiles import collect_slides

    raw = load_params(params)
    bcfg = base(raw)
    cfg = section(ExtractConfig, "extract", raw)
    cfg = dataclasses.replace(cfg, progress=False, bf16=resolve_bf16(cfg.bf16, "cpu"))  # this benchmark is CPU-only
    cohort = cohort or bcfg.train_cohort
    paths = Paths.from_base(bcfg)
    slides, _ = collect_slides(cohort, paths=paths, default_mpp=bcfg.cohort(cohort).default_mpp)
    chosen, n = [], 0
    for s in sorted(slides, key=lambda s: s.slide_id):
        if n >= max_tiles:
            break
        chosen.append(s)
        n += s.n
    enc = resolve_encoder(encoder, cfg, paths, seed=bcfg.seed)
    normalize = None
    if cfg.stain:
        from histcode.slides.stain import load_normalizer

        normalize = load_normalizer(paths.stain_reference).transform_batch
    torch.set_num_threads(max(1, cfg.threads))
    return cfg, chosen, enc, normalize


def _loader(cfg: Any, slides: list[Any], normalize: Any = None) -> Any:
    from torch.utils.data import DataLoader

    from histcode.cpus import loader_workers
    from histcode.features.extract import _RangeSampler, _slide_batches
    from histcode.slides.tile_dataset import SlideTileDataset, TileCollate, worker_init

    ds = SlideTileDataset(slides, out_px=cfg.input_px)
    workers = loader_workers(cfg.workers, "bench_extract")  # as extraction itself does
    return DataLoader(ds, batch_sampler=_RangeSampler(_slide_batches(ds, cfg.batch_size)),
                      num_workers=workers, collate_fn=TileCollate(normalize),
                      worker_init_fn=worker_init if workers else None,
                      prefetch_factor=4 if workers else None), len(ds)


def decode_bound(cfg: Any, slides: list[Any], normalize: Any) -> float:
    loader, n = _loader(cfg, slides, normalize)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return n / (time.perf_counter() - t0)


def compute_bound(cfg: Any, slides: list[Any], enc: Any, n_batches: int = 8) -> float:
    loader, _ = _loader(dataclasses.replace(cfg, workers=0), slides[:1])
    tiles = next(iter(loader))[0]
    tiles = tiles[torch.arange(cfg.batch_size) % tiles.shape[0]]  # a full batch
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = enc.module.eval().to(memory_format=fmt)

    def run() -> None:
        x = tiles.float().div_(255.0)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            model(x.contiguous(memory_format=fmt)).float().numpy()

    run()
    t0 = time.perf_counter()
    for _ in range(n_batches):
        run()
    return n_batches * cfg.batch_size / (time.perf_counter() - t0)


def extraction(cfg: Any, slides: list[Any], enc: Any, normalize: Any) -> float:
    from histcode.features.extract import EncoderJob, extract_slides

    with tempfile.TemporaryDirectory() as tmp:
        job = EncoderJob(enc.name, enc.module, enc.uri, enc.dim, Path(tmp), enc.fingerprint)
        _, stats = extract_slides(slides, [job], cfg=cfg, device=torch.device("cpu"), normalize=normalize)
    return stats["tiles_per_s"]


def memory_child(args: argparse.Namespace) -> None:
    """Extract one slide whose coords are repeated to ``--mem-tiles`` tiles; print peak RSS (MiB)."""
    cfg, slides, enc, normalize = _setup(args.params, args.cohort, args.encoder, 1)
    s = slides[0]
    reps = -(-args.mem_tiles // s.n)
    big = dataclasses.replace(s, coords=np.tile(s.coords, (reps, 1))[: args.mem_tiles])
    extraction(cfg, [big], enc, normalize)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"tiles": args.mem_tiles, "peak_rss_main_mib": own, "peak_rss_worker_mib": kids}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cohort", default=None)
    ap.add_argument("--encoder", default="random")
    ap.add_argument("--max-tiles", type=int, default=3000)
    ap.add_argument("--mem-tiles", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--mem-sizes", default="500,2000", help="tile counts of the memory test ('' to skip)")
    ap.add_argument("--out", default="benchmarks/results/bench_extract.json")
    args = ap.parse_args()
    if args.mem_tiles:
        memory_child(args)
        return
    cfg, slides, enc, normalize = _setup(args.params, args.cohort, args.encoder, args.max_tiles)
    n_tiles = sum(s.n for s in slides)
    decode = decode_bound(cfg, slides, normalize)
    compute = compute_bound(cfg, slides, enc)
    full = extraction(cfg, slides, enc, normalize)
    memory = []
    for size in [int(v) for v in args.mem_sizes.split(",") if v]:
        cmd = [sys.executable, __file__, "--params", args.params, "--encoder", args.encoder,
               "--mem-tiles", str(size)] + (["--cohort", args.cohort] if args.cohort else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        memory.append(json.loads(out))
    result = {"encoder": enc.name, "dim": enc.dim, "input_px": cfg.input_px, "batch_size": cfg.batch_size,
              "workers": cfg.workers, "threads": cfg.threads, "bf16": cfg.bf16, "stain": cfg.stain,
              "slides": len(slides), "tiles": n_tiles, "decode_tiles_per_s": decode,
              "compute_tiles_per_s": compute, "extract_tiles_per_s": full,
              "efficiency": full / min(decode, compute), "bound": "decode" if decode < compute else "compute",
              "serial_bound_tiles_per_s": 1 / (1 / decode + 1 / compute),
              "efficiency_vs_serial_bound": full * (1 / decode + 1 / compute),
              "goal_efficiency": 0.8, "memory": memory}
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
