"""How many CPUs a stage may use: requested counts (DataLoader workers, torch threads) capped at the CPUs this
process may run on.

A profile written for a GPU node (``params.paper.yaml``: 16 loader workers, 16 torch threads) then runs on a
laptop or a 2-core runner without oversubscribing it: 16 readers on 2 cores only contend, and 16 torch threads
spin against each other. Loader workers never change outputs (the sampler fixes batches and their order); a
capped thread count can change float reductions in their last bits, as other hardware would. No torch import.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity: taskset, a container's cpuset), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS/Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def capped(requested: int, stage: str, what: str) -> int:
    """``requested`` or the available CPUs if fewer, with a log line naming ``stage`` and ``what`` when capped."""
    cpus = available_cpus()
    if requested > cpus:
        log.info("%s: %d %s requested, %d CPU(s) available to this process: using %d", stage, requested, what,
                 cpus, cpus)
        return cpus
    return requested


def loader_workers(requested: int, stage: str) -> int:
    """DataLoader worker processes for ``stage`` (0: read in the main process)."""
    return capped(max(0, requested), stage, "loader workers")


def torch_threads(requested: int, stage: str) -> int:
    """torch intra-op threads for ``stage`` (at least 1)."""
    return capped(max(1, requested), stage, "torch threads")
