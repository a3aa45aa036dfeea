"""Batched tile embedding, slide by slide: OpenSlide reads and stain normalisation in DataLoader workers,
bf16/channels_last inference in the main process, one streamed ``.h5`` per slide.

One DataLoader serves all of a rank's slides (batches never cross a slide), so workers stay busy across
slide boundaries. A missing slide, a corrupt file or too many bad tiles fail that slide only; a slide whose
file records the same encoder, settings and tiles (``histcode.features.resume``) is skipped on rerun (resume):
files only appear once complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from histcode.cpus import loader_workers
from histcode.features.config import ExtractConfig
from histcode.features.resume import expected_attrs, finished
from histcode.io.features import FeatureWriter, trident_coords_attrs
from histcode.precision import resolve_bf16
from histcode.preflight import disk_full, is_disk_full
from histcode.slides.cohort_tiles import SlideTiles
from histcode.slides.tile_dataset import (
    SlideTileDataset,
    TileCollate,
    loader_worker_init,
    normalize_on_device,
    normalize_uint8,
)
from histcode.ssl.backbone import relu_out_of_place

log = logging.getLogger(__name__)


@dataclass
class SlideOutcome:
    slide_id: str
    status: str  # done | skipped (already extracted) | partial (some tiles dropped) | failed
    n_tiles: int
    n_failed_tiles: int
    reason: str = ""


def shard(slides: list[SlideTiles], rank: int, world_size: int) -> list[SlideTiles]:
    """Round-robin over slides sorted by id (stable across ranks and reruns)."""
    ordered = sorted(slides, key=lambda s: s.slide_id)
    return ordered[rank::world_size]


def _slide_batches(dataset: SlideTileDataset, batch_size: int) -> list[tuple[int, int, int]]:
    """(slide index, start, end) flat-index ranges; batches never cross slides."""
    out = []
    for s in range(len(dataset.slides)):
        lo, hi = int(dataset.offsets[s]), int(dataset.offsets[s + 1])
        out.extend((s, a, min(a + batch_size, hi)) for a in range(lo, hi, batch_size))
    return out


class _RangeSampler(torch.utils.data.Sampler[list[int]]):
    def __init__(self, ranges: list[tuple[int, int, int]]) -> None:
        self.ranges = ranges

    def __iter__(self) -> Iterator[list[int]]:
        return (list(range(a, b)) for _, a, b in self.ranges)

    def __len__(self) -> int:
        return len(self.ranges)


@dataclass
class EncoderJob:
    """One encoder to run over the slides and where its ``.h5`` files go."""

    name: str
    module: nn.Module
    uri: str
    dim: int
    out_dir: Path
    fingerprint: str
    input_px: int = 0  # tile side this encoder is fed (0: extract.input_px); the encoder resizes from there
    max_tiles: int = 0  # > 0: embed a seeded subsample of at most this many tiles per slide (baselines)
    seed: int = 0
    settings: str = ""  # histcode.features.resume.settings_digest: the settings that change the numbers

    @property
    def identity(self) -> str:
        """What a finished file must match to be skipped: the weights and, when subsampled, the subsample."""
        return f"{self.fingerprint}-sub{self.max_tiles}s{self.seed}" if self.max_tiles > 0 else self.fingerprint


def subsample_rows(slide_id: str, n: int, max_tiles: int, seed: int) -> np.ndarray:
    """Boolean (n,) mask of the tiles a subsampled encoder embeds: all when ``n <= max_tiles``, else a uniform
    sample of ``max_tiles`` seeded by (seed, slide_id), so every rerun and every rank picks the same tiles."""
    keep = np.ones(n, dtype=bool)
    if 0 < max_tiles < n:
        import zlib

        rng = np.random.default_rng([seed, zlib.crc32(slide_id.encode())])
        keep[:] = False
        keep[rng.choice(n, size=max_tiles, replace=False)] = True
    return keep


class _Sink:
    """One (slide, encoder) output: a streaming writer, or the reason it broke."""

    def __init__(self, job: EncoderJob, slide: SlideTiles, cfg: ExtractConfig, extra: dict[str, Any]) -> None:
        self.keep = subsample_rows(slide.slide_id, slide.n, job.max_tiles, job.seed)
        attrs = {"encoder": job.name, "encoder_uri": job.uri, "encoder_fingerprint": job.identity, "dim": job.dim,
                 "extract_settings": job.settings, "tile_config_digest": slide.attrs.get("tile_config_digest"),
                 "tile_px": slide.attrs.get("tile_px"),
                 "target_mpp": slide.attrs.get("target_mpp"), "patch_size": slide.patch_size,
                 "input_px": job.input_px or cfg.input_px, "n_tiles_slide": slide.n,
                 "subsample_max_tiles": job.max_tiles, **extra}
        attrs = {k: (v if v is not None else -1) for k, v in attrs.items()}
        coords_attrs = trident_coords_attrs(slide.slide_id, patch_size_level0=slide.patch_size,
                                            tile_px=int(attrs["tile_px"]), target_mpp=float(attrs["target_mpp"]),
                                            slide_mpp=slide.mpp or slide.attrs.get("slide_mpp"),
                                            savetodir=job.out_dir)
        self.writer = FeatureWriter(job.out_dir / f"{slide.slide_id}.h5", n_max=int(self.keep.sum()), dim=job.dim,
                                    dtype=cfg.dtype, attrs=attrs, coords_attrs=coords_attrs)
        self.broken = ""

    def finish(self, slide: SlideTiles, bad: int, first_err: str, max_bad_frac: float) -> SlideOutcome:
        if self.broken or self.writer.n == 0 or bad > max_bad_frac * slide.n:
            self.writer.abort()
            reason = self.broken or f"{bad}/{slide.n} tile reads failed (first: {first_err})"
            return SlideOutcome(slide.slide_id, "failed", slide.n, bad, reason)
        self.writer.commit(n_failed_tiles=bad)
        return SlideOutcome(slide.slide_id, "partial" if bad else "done", slide.n, bad, first_err if bad else "")


def extract_slides(slides: list[SlideTiles], jobs: list[EncoderJob], *, cfg: ExtractConfig, device: torch.device,
                   normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   extra_attrs: dict[str, Any] | None = None,
                   stain_on_device: bool | None = None) -> tuple[dict[str, list[SlideOutcome]], dict[str, float]]:
    """Embed every tile of ``slides`` with every encoder of ``jobs`` in ONE pass over the pixels (tiles are
    read and normalised once); returns per-encoder, per-slide outcomes and speed.

    ``stain_on_device`` (None: on accelerators, see ``normalize_on_device``) runs ``normalize`` on the batch
    after the transfer instead of in the loader workers; both give the same uint8 tiles."""
    outcomes: dict[str, list[SlideOutcome]] = {j.name: [] for j in jobs}
    todo: list[SlideTiles] = []
    pending: list[list[int]] = []  # job indices that still need each slide of ``todo``
    for s in slides:
        need = []
        for i, j in enumerate(jobs):
            if finished(j.out_dir / f"{s.slide_id}.h5", expected_attrs(j.identity, j.settings, s.attrs, s.n)):
                outcomes[j.name].append(SlideOutcome(s.slide_id, "skipped", s.n, 0, "already extracted"))
            else:
                need.append(i)
        if need and not s.path.exists():
            for i in need:
                outcomes[jobs[i].name].append(SlideOutcome(s.slide_id, "failed", s.n, s.n,
                                                           f"{s.path}: slide file not found"))
        elif need:
            todo.append(s)
            pending.append(need)
    stats = {"tiles": 0.0, "seconds": 0.0, "tiles_per_s": 0.0, "embeddings_per_s": 0.0}
    if not todo:
        return outcomes, stats
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    bf16 = resolve_bf16(cfg.bf16, device.type)
    models = [relu_out_of_place(j.module.to(device).eval().to(memory_format=fmt)) for j in jobs]
    read_px = max([cfg.input_px] + [j.input_px for j in jobs])  # read once, at the largest size any encoder wants
    dataset = SlideTileDataset(todo, out_px=read_px)
    ranges = _slide_batches(dataset, cfg.batch_size)
    on_device = normalize_on_device(device, normalize) if stain_on_device is None else \
        bool(stain_on_device and normalize is not None)
    workers = loader_workers(cfg.workers, "extract")
    loader = DataLoader(dataset, batch_sampler=_RangeSampler(ranges), num_workers=workers,
                        collate_fn=TileCollate(None if on_device else normalize),
                        worker_init_fn=loader_worker_init(device) if workers else None,
                        pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None)
    from histcode.console import interactive, tqdm

    bar = tqdm(total=len(dataset), desc=f"extract {'+'.join(j.name for j in jobs)}", unit="tile",
               disable=not cfg.progress)
    sinks: dict[int, _Sink] = {}
    current, bad, first_err, embedded = -1, 0, "", 0
    t0 = time.perf_counter()

    per_slide_lines = not interactive()  # under DVC / in log files: a line per slide instead of a tile bar

    def finish(s: int) -> None:
        done = [sink.finish(todo[s], bad, first_err, cfg.max_bad_tile_frac) for sink in sinks.values()]
        for i, outcome in zip(sinks, done, strict=True):
            outcomes[jobs[i].name].append(outcome)
        sinks.clear()
        if per_slide_lines:
            elapsed = max(time.perf_counter() - t0, 1e-9)
            status = ", ".join(f"{jobs[i].name} {o.status}" for i, o in zip(pending[s], done, strict=True))
            log.info("extract: slide %d/%d %s: %d tiles (%s); %.0f tiles/s, %.0f s elapsed", s + 1, len(todo),
                     todo[s].slide_id, todo[s].n, status, (int(dataset.offsets[s]) + todo[s].n) / elapsed, elapsed)

    try:
        with torch.inference_mode():
            for (s, a, b), (tiles, errors) in zip(ranges, loader, strict=True):
                if s != current:
                    if current >= 0:
                        finish(current)
                    current, bad, first_err = s, 0, ""
                    sinks.update({i: _Sink(jobs[i], todo[s], cfg, extra_attrs or {}) for i in pending[s]})
                ok = np.array([not e for e in errors])
                bad += int((~ok).sum())
                if not first_err and not ok.all():
                    first_err = next(e for e in errors if e)
                bar.update(b - a)
                if not ok.any():
                    continue
                x = tiles[torch.from_numpy(ok)].to(device, non_blocking=True)
                if on_device and normalize is not None:
                    x = normalize_uint8(x, normalize)
                x = x.float().div_(255.0)
                x = x.contiguous(memory_format=fmt)
                lo, hi = a - int(dataset.offsets[s]), b - int(dataset.offsets[s])
                coords = todo[s].coords[lo:hi][ok]
                for i, sink in sinks.items():
                    rows = sink.keep[lo:hi][ok]
                    if sink.broken or not rows.any():
                        continue
                    try:
                        xi = x if rows.all() else x[torch.from_numpy(rows).to(x.device)]
                        px = jobs[i].input_px or cfg.input_px
                        if xi.shape[-1] != px:  # e.g. AdCo at input_px beside a 224-px foundation model
                            xi = torch.nn.functional.interpolate(xi, size=(px, px), mode="bilinear", antialias=True,
                                                                 align_corners=False).contiguous(memory_format=fmt)
                        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                            feats = models[i](xi)
                        sink.writer.write(feats.float().cpu().numpy(), coords[rows])
                        embedded += int(rows.sum())
                    except Exception as exc:  # this slide fails for this encoder; everything else goes on
                        if is_disk_full(exc):
                            raise
                        log.exception("extract %s: slide %s failed", jobs[i].name, todo[s].slide_id)
                        sink.broken = f"{type(exc).__name__}: {exc}"
            if current >= 0:
                finish(current)
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        for sink in sinks.values():  # the slide being written: its temp files go, finished slides stay
            sink.writer.abort()
        bar.close()
        start = int(dataset.offsets[current]) if current >= 0 else 0
        per_tile = sum(j.dim * np.dtype(cfg.dtype).itemsize + 8 for j in jobs)
        done = sum(o.status in ("done", "partial") for out in outcomes.values() for o in out) // max(1, len(jobs))
        raise disk_full(jobs[0].out_dir, (len(dataset) - start) * per_tile, done, len(todo) - max(current, 0)) \
            from exc
    bar.close()
    seconds = max(time.perf_counter() - t0, 1e-9)
    stats = {"tiles": float(len(dataset)), "seconds": seconds, "tiles_per_s": len(dataset) / seconds,
             "embeddings_per_s": embedded / seconds}
    return outcomes, stats


def outcomes_frame(outcomes: list[SlideOutcome]) -> Any:
    import pandas as pd

    cols = ["slide_id", "status", "n_tiles", "n_failed_tiles", "reason"]
    return pd.DataFrame([asdict(o) for o in outcomes], columns=cols)
