"""Tiles of many slides as one flat, map-style Dataset read with OpenSlide in DataLoader workers.

Used by pretraining (random tiles across slides) and extraction (slide by slide). Each worker opens a
slide lazily on first use and keeps a few handles (LRU), so no handle is ever pickled or shared between
processes. A failed read never raises: it returns a white tile with ``ok = False`` so the caller can
record it and go on.

Items are ``(tile uint8 (3, out_px, out_px), error)`` with ``error == ""`` for a good read.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from histcode.slides.cohort_tiles import SlideTiles

log = logging.getLogger(__name__)

MAX_OPEN_SLIDES = 8


class SlideTileDataset(Dataset[tuple[torch.Tensor, str]]):
    """Flat index over all tiles of ``slides`` → (uint8 (3, out_px, out_px) tensor, error message or "")."""

    def __init__(self, slides: list[SlideTiles], *, out_px: int) -> None:
        self.slides = list(slides)
        self.out_px = out_px
        counts = np.array([s.n for s in self.slides], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self._readers: OrderedDict[int, Any] = OrderedDict()
        self._open_errors: dict[int, str] = {}  # slides that failed to open in this worker: fail fast

    @property
    def n_tiles(self) -> list[int]:
        return [s.n for s in self.slides]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict[str, Any]:  # never ship open handles to workers
        state = self.__dict__.copy()
        state["_readers"] = OrderedDict()
        state["_open_errors"] = {}
        return state

    def locate(self, i: int) -> tuple[int, int]:
        """Flat index → (slide index, tile index within the slide)."""
        s = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return s, int(i - self.offsets[s])

    def _reader(self, s: int) -> Any:
        from histcode.slides.reader import SlideReader

        if s in self._readers:
            self._readers.move_to_end(s)
            return self._readers[s]
        if s in self._open_errors:
            raise RuntimeError(self._open_errors[s])
        slide = self.slides[s]
        try:
            reader = SlideReader(slide.path, mpp_override=slide.mpp, default_mpp=slide.default_mpp)
        except Exception as exc:
            self._open_errors[s] = f"{type(exc).__name__}: {exc}"
            raise
        self._readers[s] = reader
        while len(self._readers) > MAX_OPEN_SLIDES:
            _, old = self._readers.popitem(last=False)
            old.close()
        return reader

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        s, j = self.locate(i)
        slide = self.slides[s]
        x, y = (int(v) for v in slide.coords[j])
        try:
            rgb = self._reader(s).read_tile(x, y, slide.patch_size, self.out_px)
            return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous(), ""
        except Exception as exc:  # corrupt tile or missing slide: reported by the caller
            log.debug("tile read failed: %s (%s, %s): %s", slide.slide_id, x, y, exc)
            reason = self._open_errors.get(s) or f"{type(exc).__name__}: {exc}"
            return torch.full((3, self.out_px, self.out_px), 255, dtype=torch.uint8), reason


class TileCollate:
    """DataLoader ``collate_fn`` that also stain-normalises, so the work runs in the loader workers and the
    main process only runs the network.

    items: uint8 (3, H, W) tensors or (tile, error) pairs → (uint8 (B, 3, H, W), list of errors). The
    normalised batch is re-quantised to uint8 (as the normalisers' own uint8 path does) to keep
    inter-process copies small.
    """

    def __init__(self, normalize: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.normalize = normalize

    def __call__(self, items: list[Any]) -> tuple[torch.Tensor, list[str]]:
        if isinstance(items[0], tuple | list):
            tiles = torch.stack([t for t, _ in items])
            errors = [str(e) for _, e in items]
        else:
            tiles, errors = torch.stack(items), [""] * len(items)
        if self.normalize is not None:
            tiles = normalize_uint8(tiles, self.normalize)
        return tiles, errors


def normalize_uint8(tiles: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Stain-normalise uint8 (B, 3, H, W) tiles on their device and re-quantise to uint8: the same result
    whether it runs in a CPU loader worker or on the accelerator after the transfer."""
    x = normalize(tiles.float().div_(255.0))
    return x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)


def normalize_on_device(device: torch.device, normalize: object | None) -> bool:
    """Where stain normalisation runs: on an accelerator after the transfer (a batch of 512 tiles costs it
    milliseconds, the CPU workers ~80 tiles/s each: measured on an H200, benchmarks/bench_gpu.py); on a CPU
    in the loader workers, in parallel with the network."""
    return normalize is not None and device.type != "cpu"


LOADER_NICE = 19  # CPU runs: loader workers at the lowest priority


def loader_worker_init(device: torch.device) -> Callable[[int], None]:
    """The ``worker_init_fn`` for a model on ``device``: :func:`worker_init`, and on a CPU also the lowest
    scheduling priority. Then the network's threads own the cores and the workers run in their gaps (waits,
    single-threaded ops), instead of preempting one of its threads and stalling the others at every op's barrier
    (2 cores, two torch threads, OpenSlide's region reads: extract@tcga_synth 47.9 s at equal priority, 37.9 niced).
    On an accelerator the loader is the bound and keeps its priority."""
    return worker_init if device.type != "cpu" else _background_worker_init


def _background_worker_init(worker_id: int) -> None:
    worker_init(worker_id)
    os.nice(LOADER_NICE)


def worker_init(_: int) -> None:
    """DataLoader worker setup: one thread each (the workers already run in parallel)."""
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass
