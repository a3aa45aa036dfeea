"""Process pools for independent, seeded torch fits (MIL CV folds, per-gene MIL models) and for work beside a stage.

One bag per step is too small a job to gain from more torch threads, so stages scale with processes: spawned
(the stage's process already holds torch's thread pools, which do not survive a fork), each with ``threads``
torch threads. ``Deferred`` stands in for a future when there are no workers, so callers submit and collect
the same way either way. ``process_pool`` is the same without torch, for work beside the stage's own on the other
core: figures (heatmaps, galleries), table validation (great-expectations' imports); its workers hold no torch.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Generic, TypeVar

from histcode.cpus import torch_threads

T = TypeVar("T")


def _init_worker(threads: int) -> None:
    from histcode.memory_reuse import reuse_freed_memory

    reuse_freed_memory()  # a spawned process starts with glibc's defaults
    import torch
    from threadpoolctl import threadpool_limits

    from histcode.process_exit import skip_exit_collection

    skip_exit_collection()
    n = torch_threads(threads, "worker process")
    torch.set_num_threads(n)
    # numpy's BLAS too: its default (all cores) in each of 2 workers on 2 cores spun on the per-gene fits' PCA,
    # 23 of train_de's 55 CPU-s (py-spy, demo)
    threadpool_limits(n)


def torch_pool(workers: int, threads: int) -> ProcessPoolExecutor | None:
    """``workers`` spawned processes of ``threads`` torch threads each; None for 0 (run in this process)."""
    if workers <= 0:
        return None
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(threads,))


def _init_plain_worker() -> None:
    from histcode.memory_reuse import reuse_freed_memory
    from histcode.process_exit import skip_exit_collection

    reuse_freed_memory()
    skip_exit_collection()


def process_pool(workers: int) -> ProcessPoolExecutor | None:
    """``workers`` spawned processes (no torch imported; spawned, not forked, because the stage's process may
    hold MLflow's and HDF5's state); None for 0 (run in this process)."""
    if workers <= 0:
        return None
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_plain_worker)


class Deferred(Generic[T]):
    """Inline stand-in for a future (no workers): the job runs when its result is first asked for."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.value: T | None = None
        self.done = False

    def result(self) -> T:
        if not self.done:
            self.value, self.done = self.fn(), True
        return self.value  # type: ignore[return-value]


def submit(pool: ProcessPoolExecutor | None, fn: Callable[..., T], *args: Any,
           **kwargs: Any) -> Future[T] | Deferred[T]:
    """``pool.submit(fn, ...)``, or without a pool a ``Deferred`` call that runs when its result is asked for."""
    if pool is not None:
        return pool.submit(fn, *args, **kwargs)
    return Deferred(lambda: fn(*args, **kwargs))
