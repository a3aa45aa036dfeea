"""AdCo loss and adversarial bank against NumPy and autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from histcode.ssl.adco import AdCoLoss, AdversarialBank
from histcode.ssl.config import PretrainConfig
from histcode.ssl.heads import ProjectedEncoder
from histcode.ssl.methods import AdCoMethod


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _numpy_adco_loss(q: np.ndarray, k: np.ndarray, w: np.ndarray, tau: float) -> float:
    """The paper's formula written out sample by sample, in float64."""
    m_hat = w / np.linalg.norm(w, axis=1, keepdims=True)
    total = 0.0
    for n in range(q.shape[0]):
        pos = np.exp(q[n] @ k[n] / tau)
        neg = sum(np.exp(q[n] @ m / tau) for m in m_hat)
        total += -np.log(pos / (pos + neg))
    return total / q.shape[0]


def test_loss_matches_numpy_formula() -> None:
    rng = np.random.default_rng(0)
    q, k, w = _unit(rng, 5, 8), _unit(rng, 5, 8), rng.normal(size=(7, 8)) * 3.0
    bank = AdversarialBank(7, 8, tau=0.02)
    with torch.no_grad():
        bank.weight.copy_(torch.tensor(w, dtype=torch.float32))
    qt, kt = torch.tensor(q, dtype=torch.float32), torch.tensor(k, dtype=torch.float32)
    got = AdCoLoss(0.12)(qt, kt, bank.negatives())
    assert got.item() == pytest.approx(_numpy_adco_loss(q, k, w, 0.12), rel=1e-5)
    assert bank.loss(qt, kt).item() == pytest.approx(_numpy_adco_loss(q, k, w, 0.02), rel=1e-4)


def test_analytic_bank_gradient_equals_autograd() -> None:
    torch.manual_seed(0)
    q = F.normalize(torch.randn(6, 16, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(6, 16, dtype=torch.float64), dim=1)
    bank = AdversarialBank(10, 16, tau=0.05).double()
    with torch.no_grad():
        bank.weight.mul_(torch.rand(10, 1, dtype=torch.float64) * 3 + 0.5)  # unnormalised rows
    bank.weight.grad = None
    bank.loss(q, k).backward()
    auto = bank.weight.grad.clone()
    analytic = bank.grad(q, k).double()
    torch.testing.assert_close(analytic, auto, rtol=1e-5, atol=1e-7)
    with torch.no_grad():  # the trainer's path: similarities reused from the encoder loss
        sims = AdCoLoss.similarities(q, k, bank.negatives())
    torch.testing.assert_close(bank.grad(q, k, sims).double(), auto, rtol=1e-5, atol=1e-7)


def test_bank_step_is_gradient_ascent_with_weight_decay() -> None:
    torch.manual_seed(1)
    cfg = PretrainConfig(backbone="resnet18_trunc", bank_size=12, proj_dim=8, proj_hidden=16, bank_lr=0.05,
                         bank_weight_decay=1e-3, bank_tau=0.1)
    method = AdCoMethod(_TinyEncoder(), cfg)
    q = F.normalize(torch.randn(4, 8), dim=1)
    k = F.normalize(torch.randn(4, 8), dim=1)
    w0 = method.bank.weight.detach().clone()
    before = method.bank.loss(q, k).item()
    g = method.bank.grad(q, k)
    method._pending = [(q, k, None)]
    method.after_optimizer_step()
    # first SGD step (empty momentum buffer, maximize): W ← W + lr·∂L/∂W − lr·λ·W
    torch.testing.assert_close(method.bank.weight.detach(), w0 + 0.05 * g - 0.05 * 1e-3 * w0, rtol=1e-5, atol=1e-6)
    assert method.bank.loss(q, k).item() > before  # the adversary made negatives harder


def test_bank_init_from_keys_cycles_and_checks_shape() -> None:
    bank = AdversarialBank(5, 3, tau=0.02)
    keys = F.normalize(torch.randn(2, 3), dim=1)
    bank.init_from_keys(keys)
    torch.testing.assert_close(bank.weight.detach(), keys[[0, 1, 0, 1, 0]])
    assert bool(bank.initialised)
    with pytest.raises(ValueError, match=r"expected \(M>0, 3\) keys"):
        bank.init_from_keys(torch.randn(2, 4))


class _TinyEncoder(torch.nn.Module):
    """Conv + pool encoder with a ``dim`` (keeps method tests fast and independent of timm)."""

    dim = 6

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)
        self.bn = torch.nn.BatchNorm2d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).relu().mean(dim=(2, 3))


def test_key_network_moves_by_momentum_only() -> None:
    torch.manual_seed(2)
    cfg = PretrainConfig(bank_size=8, proj_dim=4, proj_hidden=8, key_momentum=0.9, lr=0.5)
    method = AdCoMethod(_TinyEncoder(), cfg)
    opt = torch.optim.SGD(method.net.parameters(), lr=0.5)
    amp = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    for step in range(3):
        key_before = [p.detach().clone() for p in method.key.parameters()]
        query_before = [p.detach().clone() for p in method.query.parameters()]
        x1, x2 = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
        loss, _ = method.training_loss(method.net, x1, x2, amp, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_optimizer_step()
        for kb, qb, k in zip(key_before, query_before, method.key.parameters(), strict=True):
            assert k.grad is None and not k.requires_grad
            torch.testing.assert_close(k.detach(), 0.9 * kb + 0.1 * qb, rtol=0, atol=1e-6)
        if step > 0:  # the query did move, so the check above is not vacuous
            assert any(not torch.equal(a, b.detach()) for a, b in zip(query_before, method.query.parameters(),
                                                                       strict=True))
    assert isinstance(method.query, ProjectedEncoder)


def test_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="equal shape"):
        AdCoLoss(0.1)(torch.randn(3, 4), torch.randn(2, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match="temperature"):
        AdCoLoss(0.0)


@pytest.mark.parametrize("symmetric", [False, True])
def test_key_forward_on_a_side_thread_trains_the_same_bits(symmetric: bool) -> None:
    """The key net's forward on a side thread (beside the query's) gives bit-identical training: losses,
    bank, query weights and the key net's BN statistics after a few steps."""
    from concurrent.futures import ThreadPoolExecutor

    def train(side: ThreadPoolExecutor | None) -> list[torch.Tensor]:
        torch.manual_seed(5)
        method = AdCoMethod(_TinyEncoder(), PretrainConfig(bank_size=8, proj_dim=4, proj_hidden=8, symmetric=symmetric))
        opt = torch.optim.SGD(method.net.parameters(), lr=0.5)
        amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
        data = torch.Generator().manual_seed(0)
        losses = []
        for step in range(4):
            x1, x2 = torch.rand(6, 3, 10, 10, generator=data), torch.rand(6, 3, 10, 10, generator=data)
            loss, _ = method.training_loss(method.net, x1, x2, amp, torch.Generator().manual_seed(step), side=side)
            opt.zero_grad()
            loss.backward()
            opt.step()
            method.after_optimizer_step()
            losses.append(loss.detach())
        return [torch.stack(losses), *method.state_dict().values()]

    with ThreadPoolExecutor(1) as side:
        threaded = train(side)
    for a, b in zip(threaded, train(None), strict=True):
        assert torch.equal(a, b)


def test_key_side_thread_only_where_it_is_safe_and_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    from histcode import distributed as D
    from histcode.ssl import trainer

    one = D.init_distributed("auto")
    monkeypatch.setattr(trainer, "available_cpus", lambda: 2)
    torch.set_num_threads(1)
    with trainer.key_side(torch.device("cpu"), one) as side:
        assert side is not None and side.submit(lambda: 7).result() == 7
    assert side._shutdown
    with trainer.key_side(torch.device("cuda"), one) as side:
        assert side is None  # an accelerator queues its kernels anyway
    from dataclasses import replace

    with trainer.key_side(torch.device("cpu"), replace(one, world_size=2)) as side:
        assert side is None  # DDP's collectives must not run from two threads
    monkeypatch.setattr(trainer, "available_cpus", lambda: 1)
    with trainer.key_side(torch.device("cpu"), one) as side:
        assert side is None  # no core to spare
