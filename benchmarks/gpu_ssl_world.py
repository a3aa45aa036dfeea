"""AdCo pretrained at GPU scale on the demo cohort's tiles, then every tile embedded: does a better-trained
encoder carry the morphology that DE needs (issue 14)? Runs on a lent GPU in one prepared call.

Input: ``tiles128.h5`` (every tile of the demo cohort at 128 px as JPEG, its slide, coords; made by
``benchmarks/gpu_pack_tiles.py``) and the stain reference. The trainer is the project's own
(``ssl.trainer.fit``, in-memory tiles, stain normalisation and H&E augmentation on the device), run in chunks of
epochs until ``--budget-s`` so the call always ends in time (the LR schedule is that of ``--epochs``; a run cut
short says how many it did). Writes, per encoder (``adco_gpu``: the trained ResNet50 cut after layer3;
``random_r50``: the same network at its seeded initialisation), the features of every tile (float16, split in
halves to fit the device's file-size limit) and ``ssl_world.json`` (loss curve, epochs, tiles/s).

    python benchmarks/gpu_ssl_world.py --tiles .gpu/exp/tiles128.h5 --stain .gpu/exp/stain_reference.json \\
        --out $OUT --budget-s 240
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch


def load_tiles(path: Path, limit: int = 0) -> tuple[torch.Tensor, list[int], list[str]]:
    with h5py.File(path) as f:
        blobs = f["jpeg"][: limit or None]
        n_tiles = [int(v) for v in f["n_tiles"][:]]
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in f["slide_id"][:]]
    imgs = np.stack([cv2.cvtColor(cv2.imdecode(b, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for b in blobs])
    if limit:  # a rehearsal: keep whole slides only
        keep, total = [], 0
        for n in n_tiles:
            if total + n > len(imgs):
                break
            keep.append(n)
            total += n
        n_tiles, ids, imgs = keep, ids[: len(keep)], imgs[:total]
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), n_tiles, ids


@torch.inference_mode()
def embed(model: torch.nn.Module, tiles: torch.Tensor, dev: torch.device, normalize: object, px: int,
          batch: int = 1024) -> np.ndarray:
    from histcode.slides.tile_dataset import normalize_uint8

    model = model.to(dev).eval().to(memory_format=torch.channels_last)
    out = []
    for i in range(0, len(tiles), batch):
        x = tiles[i : i + batch].to(dev, non_blocking=True)
        x = normalize_uint8(x, normalize).float().div_(255.0)  # type: ignore[arg-type]
        if x.shape[-1] != px:
            x = torch.nn.functional.interpolate(x, size=(px, px), mode="bilinear", antialias=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            out.append(model(x.contiguous(memory_format=torch.channels_last)).float().cpu())
    return torch.cat(out).numpy().astype(np.float16)


def save_halves(out: Path, name: str, feats: np.ndarray) -> None:
    half = (len(feats) + 1) // 2
    for k, part in enumerate((feats[:half], feats[half:])):
        np.save(out / f"{name}_{k}.npy", part)


def main() -> None:
    from histcode.slides.stain import load_normalizer
    from histcode.ssl.backbone import create_encoder
    from histcode.ssl.config import PretrainConfig
    from histcode.ssl.data import TensorTiles
    from histcode.ssl.trainer import fit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=Path, required=True)
    ap.add_argument("--stain", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--backbone", default="resnet50_trunc")
    ap.add_argument("--input-px", type=int, default=112)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--chunk", type=int, default=5, help="epochs per fit call (checkpointed between)")
    ap.add_argument("--budget-s", type=float, default=240)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--bank", type=int, default=8192)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--limit", type=int, default=0, help="rehearsal: first N tiles only")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    t0 = time.perf_counter()
    tiles, n_tiles, ids = load_tiles(args.tiles, args.limit)
    normalize = load_normalizer(args.stain).transform_batch
    print(f"{len(tiles)} tiles of {len(ids)} slides decoded in {time.perf_counter() - t0:.1f} s", flush=True)
    cfg = PretrainConfig(method="adco", backbone=args.backbone, input_px=args.input_px, read_px=tiles.shape[-1],
                         epochs=args.epochs, batch_size=args.batch, tiles_per_slide=1.0,
                         max_tiles_per_slide=10**9, bank_size=args.bank, proj_hidden=1024, proj_dim=128,
                         key_momentum=0.99, workers=args.workers, threads=4, log_every=10**9, progress=False)
    dataset = TensorTiles(tiles, n_tiles)
    history, done, rates = [], 0, []
    t_fit = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "adco.pt"
        while done < cfg.epochs:
            t_chunk = time.perf_counter()
            result = fit(cfg, dataset, n_tiles, seed=0, checkpoint=ckpt, resume=True, normalize=normalize,
                         stop_after_epochs=args.chunk)
            done = int(result.metrics["epochs_done"])
            history = result.history
            rates.append(result.metrics["tiles_per_s"])
            spent, last = time.perf_counter() - t_fit, time.perf_counter() - t_chunk
            print(f"epochs {done}/{cfg.epochs}: loss {history[-1]['loss']:.3f}, "
                  f"{result.metrics['tiles_per_s']:.0f} tiles/s, {spent:.0f} s", flush=True)
            if spent + last > args.budget_s:
                break
        encoder = result.encoder
    fit_s = time.perf_counter() - t_fit
    feats = embed(encoder, tiles, dev, normalize, args.input_px)
    save_halves(args.out, "adco_gpu", feats)
    torch.manual_seed(0)
    save_halves(args.out, "random_r50", embed(create_encoder(args.backbone), tiles, dev, normalize, args.input_px))
    losses = [h["loss"] for h in history]
    summary = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
               "tiles": len(tiles), "slides": ids, "n_tiles": n_tiles, "backbone": args.backbone,
               "input_px": args.input_px, "read_px": int(tiles.shape[-1]), "batch": args.batch, "bank": args.bank,
               "epochs_planned": cfg.epochs, "epochs_done": done, "fit_s": fit_s,
               "tiles_per_s_by_chunk": rates, "loss_first": losses[0] if losses else None,
               "loss_last": losses[-1] if losses else None,
               "loss_per_epoch": [float(np.mean([h["loss"] for h in history if h["epoch"] == e]))
                                  for e in range(done)],
               "feature_dim": int(feats.shape[1]), "total_s": time.perf_counter() - t0}
    (args.out / "ssl_world.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("slides", "n_tiles", "loss_per_epoch")}),
          flush=True)


if __name__ == "__main__":
    main()
