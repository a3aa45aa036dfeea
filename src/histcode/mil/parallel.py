"""CV folds of every (method, encoder) trained in worker processes while the stage logs and refits.

One bag per step is too small a job to gain from more torch threads, so train_mil scales with processes
instead: all folds are submitted at once to ``mil.workers`` spawned processes (one torch thread each, bags
cached per worker), and the stage consumes the results method by method. Seeds derive from (method, fold),
so the results do not depend on the number of workers; ``workers: 0`` runs every fold in the stage's process.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pandas as pd

from histcode.mil.bags import BagCache
from histcode.mil.config import MilConfig
from histcode.mil.cv import FoldResult, run_fold
from histcode.worker_pool import Deferred, torch_pool

_BAGS: dict[tuple[tuple[str, str], ...], BagCache] = {}  # per worker: one cache per feature set


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


class FoldRunner:
    """Submits folds to a process pool (or runs them inline with ``workers == 0``) and returns futures."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.pool = torch_pool(workers, threads)

    def submit(self, bags: BagCache, manifest: pd.DataFrame, splits: pd.DataFrame, fold: int, method: str,
               cfg: MilConfig, *, in_dim: int, seed: int) -> Future[FoldResult] | Deferred[FoldResult]:
        if self.pool is not None:
            return self.pool.submit(fold_job, manifest, bags.paths, bags.budget / 2**20, splits, fold, method,
                                    cfg, in_dim, seed)
        return Deferred(lambda: run_fold(manifest, bags, splits, fold, method, cfg, in_dim=in_dim, seed=seed))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def __enter__(self) -> FoldRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
