"""Bags of tile features read from the feature store (DESIGN §4), in bounded memory.

A bag is one slide's ``features`` (N, D). Training keeps bags in a byte-budgeted LRU cache (re-read from
h5 beyond it) and samples at most ``max_tiles`` tiles per step; inference streams ``features`` in row
chunks straight from the h5 file, so neither ever needs more than one chunk of a 100k-tile slide.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from histcode.io.features import checked_shape, feature_shape, iter_feature_chunks, read_features

log = logging.getLogger(__name__)


def read_bag(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(features (N, D), coords int32 (N, 2), attrs) of one slide; via the feature store when present."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: features file missing; run `dvc repro extract`")
    return read_features(path)


def bag_shape(path: str | Path) -> tuple[int, int]:
    """(N, D) without reading the data."""
    return feature_shape(path)


def iter_bag_chunks(path: str | Path, chunk_tiles: int) -> Iterator[Tensor]:
    """Yield float32 (≤chunk_tiles, D) row blocks of a slide's ``features`` dataset."""
    for block in iter_feature_chunks(path, chunk_tiles):
        yield torch.from_numpy(block)


class BagChunks:
    """A slide's features as row chunks that can be iterated more than once (each pass re-reads the h5):
    what two-pass streamed methods (DSMIL) need; one-pass methods read the file once."""

    def __init__(self, path: str | Path, chunk_tiles: int) -> None:
        self.path, self.chunk_tiles = Path(path), chunk_tiles

    def __iter__(self) -> Iterator[Tensor]:
        return iter_bag_chunks(self.path, self.chunk_tiles)


def feature_paths(features_dir: str | Path, slide_ids: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """Map slide ids to their features h5; return (found, {missing slide_id: reason})."""
    features_dir = Path(features_dir)
    found: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for sid in slide_ids:
        p = features_dir / f"{sid}.h5"
        if p.exists():
            found[sid] = p
        else:
            missing[sid] = f"no features file {p}"
    return found, missing


class BagCache:
    """Float32 bags by slide id, kept in memory up to ``budget_mb`` (least recently used evicted)."""

    def __init__(self, paths: dict[str, Path], budget_mb: float = 2048) -> None:
        self.paths = dict(paths)
        self.budget = int(budget_mb * 2**20)
        self._cache: OrderedDict[str, Tensor] = OrderedDict()
        self._bytes = 0

    def get(self, slide_id: str) -> Tensor:
        if slide_id in self._cache:
            self._cache.move_to_end(slide_id)
            return self._cache[slide_id]
        feats = read_bag(self.paths[slide_id])[0]
        bag = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
        size = bag.numel() * 4
        if size <= self.budget:
            while self._cache and self._bytes + size > self.budget:
                _, old = self._cache.popitem(last=False)
                self._bytes -= old.numel() * 4
            self._cache[slide_id] = bag
            self._bytes += size
        return bag


def feature_stats(bags: BagCache, slide_ids: list[str]) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and standard deviation (D,) over all tiles of ``slide_ids`` (float64 sums)."""
    total, sq, n = None, None, 0
    for sid in slide_ids:
        x = bags.get(sid).double()
        total = x.sum(0) if total is None else total + x.sum(0)
        sq = (x * x).sum(0) if sq is None else sq + (x * x).sum(0)
        n += x.shape[0]
    if total is None or sq is None or n == 0:
        raise ValueError("no tiles to compute feature statistics from")
    mean = total / n
    return mean.float(), (sq / n - mean * mean).clamp_min(0).sqrt().float()


def subsample(bag: Tensor, max_tiles: int, rng: np.random.Generator) -> Tensor:
    """At most ``max_tiles`` rows of ``bag`` drawn without replacement (training-time memory bound)."""
    if max_tiles <= 0 or bag.shape[0] <= max_tiles:
        return bag
    idx = np.sort(rng.choice(bag.shape[0], size=max_tiles, replace=False))
    return bag[torch.from_numpy(idx)]


def usable_bags(features_dir: str | Path, slide_ids: list[str], *, cohort: str, who: str
                ) -> tuple[dict[str, Path], dict[str, str]]:
    """Feature files of ``slide_ids`` that exist and read as bags (``feature_paths`` + ``validate_bags``) and
    {slide_id: reason} for the rest, each logged as skipped by ``who``; none usable is an error."""
    found, failures = feature_paths(features_dir, slide_ids)
    ok, bad = validate_bags(found)
    failures.update(bad)
    for sid, why in sorted(failures.items()):
        log.warning("%s: skipping slide %s: %s", who, sid, why)
    if not ok:
        raise FileNotFoundError(
            f"{features_dir}: no usable features for any slide of {cohort}; run `dvc repro extract`")
    return ok, failures


def validate_bags(paths: dict[str, Path]) -> tuple[dict[str, Path], dict[str, str]]:
    """Open every features file once (headers only): keep readable, non-empty bags whose feature width is
    the cohort's most common one; return (ok paths, {slide_id: reason}) so one bad file never stops a run."""
    shapes: dict[str, tuple[int, int]] = {}
    bad: dict[str, str] = {}
    for sid, p in paths.items():
        try:
            n, d = checked_shape(p)
            if n == 0:
                raise ValueError("no tiles (the slide had no tissue tiles)")
            shapes[sid] = (int(n), int(d))
        except OSError as exc:
            bad[sid] = f"{p}: unreadable HDF5 ({exc}); delete it and rerun `dvc repro extract`"
        except ValueError as exc:
            bad[sid] = f"{p}: {exc}"
    if shapes:
        dims = [d for _, d in shapes.values()]
        dim = max(set(dims), key=dims.count)
        for sid, (_, d) in shapes.items():
            if d != dim:
                bad[sid] = f"{paths[sid]}: {d}-dim features but the cohort's are {dim}-dim; re-extract it"
    return {s: p for s, p in paths.items() if s not in bad}, bad
