"""AdCo and SimCLR as training methods with one interface the trainer drives.

A method owns every network it needs; ``net`` is the part the encoder optimiser trains (and DDP wraps).
Per step the trainer calls ``training_loss`` → backward → optimiser step → ``after_optimizer_step``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any

import torch
from torch import nn

from histcode import distributed as D
from histcode.ssl.adco import AdCoLoss, AdversarialBank
from histcode.ssl.config import PretrainConfig
from histcode.ssl.heads import ProjectedEncoder, ProjectionHead, momentum_update
from histcode.ssl.simclr import NTXentLoss

Amp = Callable[[], contextlib.AbstractContextManager[Any]]


class AdCoMethod(nn.Module):
    """Query net (encoder + head), momentum key net, adversarial bank with its own ascent SGD."""

    def __init__(self, encoder: nn.Module, cfg: PretrainConfig) -> None:
        super().__init__()
        dim = int(encoder.dim)  # type: ignore[arg-type]
        self.query = ProjectedEncoder(encoder, ProjectionHead(dim, cfg.proj_hidden, cfg.proj_dim))
        self.key = copy.deepcopy(self.query)
        self.key.requires_grad_(False)
        self.bank = AdversarialBank(cfg.bank_size, cfg.proj_dim, tau=cfg.bank_tau)
        self.criterion = AdCoLoss(cfg.query_tau)
        self.key_momentum = cfg.key_momentum
        self.symmetric = cfg.symmetric
        # fused: one kernel over the (K, d) bank instead of ~5 passes (matters for K = 65536)
        self.bank_optimizer = torch.optim.SGD([self.bank.weight], lr=cfg.bank_lr, momentum=cfg.bank_momentum,
                                              weight_decay=cfg.bank_weight_decay, maximize=True, fused=True)
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    @property
    def net(self) -> nn.Module:
        return self.query

    @property
    def encoder(self) -> nn.Module:
        return self.query.encoder

    def needs_init(self) -> bool:
        return not bool(self.bank.initialised)

    @torch.no_grad()
    def keys(self, x: torch.Tensor, amp: Amp, shuffle_gen: torch.Generator) -> torch.Tensor:
        """Key embeddings (N, d) of views x with MoCo shuffle-BN across ranks (identity on one rank)."""
        xs, unshuffle = D.batch_shuffle(x, shuffle_gen)
        with amp():
            k = self.key(xs)
        return D.batch_unshuffle(k.float(), unshuffle)

    @torch.no_grad()
    def init_bank(self, views: Iterable[torch.Tensor], amp: Amp, shuffle_gen: torch.Generator) -> int:
        """Fill the bank with keys of a first pass over ``views`` (gathered over ranks); returns #keys."""
        collected: list[torch.Tensor] = []
        n = 0
        for x in views:
            k = D.all_gather_cat(self.keys(x, amp, shuffle_gen))
            collected.append(k)
            n += k.shape[0]
            if n >= self.bank.size:
                break
        if not collected:
            raise ValueError("AdCo bank initialisation got no batches; the tile sample is empty")
        self.bank.init_from_keys(torch.cat(collected)[: self.bank.size])
        return n

    def _query_and_keys(self, net: nn.Module, vq: torch.Tensor, vk: torch.Tensor, amp: Amp,
                        shuffle_gen: torch.Generator, side: Executor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries of ``vq`` (with gradient) and keys of ``vk``: the key net's forward runs on the ``side``
        thread while this one runs the query's (they share nothing: own weights, own BN statistics)."""
        if side is None:
            with amp():
                q = net(vq)
            return q, self.keys(vk, amp, shuffle_gen)
        keys = side.submit(self.keys, vk, amp, shuffle_gen)
        try:
            with amp():
                q = net(vq)
        finally:
            k = keys.result()  # waited for even when the query's forward failed: no forward left running
        return q, k

    def training_loss(self, net: nn.Module, v1: torch.Tensor, v2: torch.Tensor, amp: Amp,
                      shuffle_gen: torch.Generator, side: Executor | None = None
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """The step's loss; ``side``: a one-thread executor for the key forward (a CPU process of one rank,
        see ``ssl.trainer.key_side``), None to run it after the query's."""
        momentum_update(self.key, self.query, self.key_momentum)
        negatives = self.bank.negatives().detach()
        q1, k2 = self._query_and_keys(net, v1, v2, amp, shuffle_gen, side)
        sims = self.criterion.similarities(q1.float(), k2, negatives)  # (N, 1 + K), reused by the bank
        loss = self.criterion.from_similarities(sims)
        self._pending = [(q1.detach().float(), k2, sims.detach())]
        if self.symmetric:
            q2, k1 = self._query_and_keys(net, v2, v1, amp, shuffle_gen, side)
            sims2 = self.criterion.similarities(q2.float(), k1, negatives)
            loss = 0.5 * (loss + self.criterion.from_similarities(sims2))
            self._pending.append((q2.detach().float(), k1, sims2.detach()))
        return loss, {"pos_sim": float(sims[:, 0].detach().mean())}

    @torch.no_grad()
    def after_optimizer_step(self) -> dict[str, float]:
        """Gradient-ascent step of the bank on L(τ_b) with the batch's (pre-step) queries and keys."""
        grads = [self.bank.grad(q, k, sims) for q, k, sims in self._pending]
        g = torch.stack(grads).mean(0)
        self.bank.weight.grad = D.all_reduce_mean(g)
        self.bank_optimizer.step()
        self.bank.weight.grad = None
        self._pending = []
        return {"bank_lr": self.bank_optimizer.param_groups[0]["lr"], "bank_grad_norm": float(g.norm())}

    def optimizer_state(self) -> dict[str, Any]:
        return {"bank": self.bank_optimizer.state_dict()}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.bank_optimizer.load_state_dict(state["bank"])


class SimCLRMethod(nn.Module):
    """One encoder + head for both views; NT-Xent over the global batch (gathered with gradient)."""

    def __init__(self, encoder: nn.Module, cfg: PretrainConfig) -> None:
        super().__init__()
        dim = int(encoder.dim)  # type: ignore[arg-type]
        self.model = ProjectedEncoder(encoder, ProjectionHead(dim, cfg.proj_hidden, cfg.proj_dim))
        self.criterion = NTXentLoss(cfg.simclr_tau)

    @property
    def net(self) -> nn.Module:
        return self.model

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    def needs_init(self) -> bool:
        return False

    def init_bank(self, views: Iterable[torch.Tensor], amp: Amp, shuffle_gen: torch.Generator) -> int:
        return 0

    def training_loss(self, net: nn.Module, v1: torch.Tensor, v2: torch.Tensor, amp: Amp,
                      shuffle_gen: torch.Generator, side: Executor | None = None
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """NT-Xent of both views through the one network (``side`` is unused: both forwards need gradients
        and share BN statistics)."""
        with amp():
            z1, z2 = net(v1), net(v2)
        z1, z2 = D.all_gather_with_grad(z1.float()), D.all_gather_with_grad(z2.float())
        pos = (z1.detach() * z2.detach()).sum(1).mean()
        return self.criterion(z1, z2), {"pos_sim": float(pos)}

    def after_optimizer_step(self) -> dict[str, float]:
        return {}

    def optimizer_state(self) -> dict[str, Any]:
        return {}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        return None


def build_method(encoder: nn.Module, cfg: PretrainConfig) -> AdCoMethod | SimCLRMethod:
    """``cfg.method`` → method module (``adco`` | ``simclr``)."""
    if cfg.method == "adco":
        return AdCoMethod(encoder, cfg)
    if cfg.method == "simclr":
        return SimCLRMethod(encoder, cfg)
    raise ValueError(f"pretrain.method: unknown method {cfg.method!r}; valid: ['adco', 'simclr']")
