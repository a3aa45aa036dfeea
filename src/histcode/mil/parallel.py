"""CV folds of every (method, encoder) trained in worker processes while the stage logs and refits.

One bag per step is too small a job to gain from more torch threads, so train_mil scales with processes
instead: all folds are submitted at once to ``mil.workers`` spawned processes (one torch thread each, bags
cached per worker), and the stage consumes the results method by method. Seeds derive from (method, fold),
so the results do not depend on the number of workers; ``workers: 0`` runs every fold in the stage's process.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from histcode.mil.bags import BagCache
from histcode.mil.config import MilConfig
from histcode.mil.cv import FoldResult, run_fold

_BAGS: dict[tuple[tuple[str, str], ...], BagCache] = {}  # per worker: one cache per feature set


def _init_worker(threads: int) -> None:
    torch.set_num_threads(max(1, threads))


def fold_job(
    manifest: pd.DataFrame,
    paths: dict[str, Path],
    cache_mb: float,
    splits: pd.DataFrame,
    fold: int,
    method: str,
    cfg: MilConfig,
    in_dim: int,
    seed: int,
) -> FoldResult:
    """Train/test one fold (in a worker); the model stays behind, only predictions/metrics/history return."""
    key = tuple(sorted((k, str(v)) for k, v in paths.items()))
    if key not in _BAGS:
        _BAGS.clear()  # one feature set at a time is enough: keep the worker's memory at one cache
        _BAGS[key] = BagCache(paths, cache_mb)
    res = run_fold(manifest, _BAGS[key], splits, fold, method, cfg, in_dim=in_dim, seed=seed)
    res.model = None
    return res


class _Deferred:
    """Inline stand-in for a future: the fold trains when its result is first asked for."""

    def __init__(self, fn: Callable[[], FoldResult]) -> None:
        self.fn, self.value = fn, None

    def result(self) -> FoldResult:
        if self.value is None:
            self.value = self.fn()
        return self.value


class FoldRunner:
    """Submits folds to a process pool (or runs them inline with ``workers == 0``) and returns futures."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.pool = (
            ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                initargs=(threads,))
            if workers > 0
            else None
        )

    def submit(self, bags: BagCache, manifest: pd.DataFrame, splits: pd.DataFrame, fold: int, method: str,
               cfg: MilConfig, *, in_dim: int, seed: int) -> Future[FoldResult] | _Deferred:
        if self.pool is not None:
            return self.pool.submit(fold_job, manifest, bags.paths, bags.budget / 2**20, splits, fold, method,
                                    cfg, in_dim, seed)
        return _Deferred(lambda: run_fold(manifest, bags, splits, fold, method, cfg, in_dim=in_dim, seed=seed))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def __enter__(self) -> FoldRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
