"""MaskDropout: nn.Dropout's layer (rate, scaling, gradient, eval, state) with a cheaper CPU mask."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from histcode.mil.dropout import MaskDropout


def test_rate_scale_and_gradient_match_dropout() -> None:
    torch.manual_seed(0)
    x = torch.ones(400, 250, requires_grad=True)
    layer = MaskDropout(0.25).train()
    y = layer(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.01)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))  # inverted dropout: E[y] = x
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x·m)/dx = m, zero where dropped


def test_eval_mode_p0_and_state_are_dropout_s() -> None:
    x = torch.randn(50, 8)
    layer = MaskDropout(0.5)
    assert isinstance(layer, nn.Dropout) and layer.p == 0.5 and not layer.state_dict()  # loads old checkpoints
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(MaskDropout(0.0).train()(x), x)


def test_mask_follows_torch_s_global_seed() -> None:
    x = torch.ones(64, 32)
    torch.manual_seed(3)
    a = MaskDropout(0.25).train()(x)
    torch.manual_seed(3)
    b = MaskDropout(0.25).train()(x)
    torch.manual_seed(4)
    c = MaskDropout(0.25).train()(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
