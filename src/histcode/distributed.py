"""torch.distributed helpers for ``torchrun`` (gloo on CPU, nccl on GPU); no-ops in a single process.

AdCo needs three collectives: an all-gather of keys (bank initialisation, shuffle-BN), an all-reduce of
the bank gradient (so every rank applies the identical ascent step and banks never drift apart), and an
all-gather *with* gradient for SimCLR's global negatives.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (env RANK/WORLD_SIZE/LOCAL_RANK), else a 1-process setup."""
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not is_distributed():
        backend = "nccl" if want_cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


@torch.no_grad()
def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Element-wise mean over ranks (a new tensor when distributed; ``t`` itself on one process)."""
    if not is_distributed():
        return t
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    out /= dist.get_world_size()
    return out


@torch.no_grad()
def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """(n, ...) per rank → (world·n, ...) in rank order, without gradient. Equal n on every rank."""
    if not is_distributed():
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


def all_gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Like ``all_gather_cat`` but differentiable: the backward sums gradients back onto each rank's slice."""
    if not is_distributed():
        return t
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t.contiguous()), dim=0)


@torch.no_grad()
def batch_shuffle(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """MoCo's shuffle-BN: permute the global batch across ranks so the key encoder's BN statistics
    are computed on other samples than the query's. ``generator`` must be seeded identically on every
    rank (it is; the permutation is the same everywhere). Returns (local shuffled x, unshuffle index)."""
    if not is_distributed():
        return x, torch.arange(x.shape[0], device=x.device)
    gathered = all_gather_cat(x)
    n, r = x.shape[0], dist.get_rank()
    perm = torch.randperm(gathered.shape[0], generator=generator).to(x.device)
    unshuffle = torch.argsort(perm)
    return gathered[perm[r * n:(r + 1) * n]], unshuffle


@torch.no_grad()
def batch_unshuffle(y: torch.Tensor, unshuffle: torch.Tensor) -> torch.Tensor:
    """Undo ``batch_shuffle`` on the key embeddings (n, d) → this rank's original samples (n, d)."""
    if not is_distributed():
        return y
    gathered = all_gather_cat(y)
    n, r = y.shape[0], dist.get_rank()
    return gathered[unshuffle[r * n:(r + 1) * n]]
