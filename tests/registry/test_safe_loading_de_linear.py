"""The registered DE model of a linear method (LinearDEModel) round-trips through the safe format unchanged."""

from __future__ import annotations

from pathlib import Path

import torch

from histcode.genes.heads import LinearDEModel, de_from_stored
from histcode.registry.safe_model import read_model_files, write_model_files


def test_linear_de_model_round_trips_through_safetensors(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    f, n = 6, 3
    model = LinearDEModel(torch.randn(f, n, generator=g), torch.randn(n, generator=g), torch.randn(f, generator=g),
                          torch.rand(f, generator=g) + 0.5, torch.randn(n, generator=g),
                          torch.rand(n, generator=g) + 0.5, ["PTEN", "MYC", "CD3D"], 1.5)
    files = write_model_files(model, tmp_path)
    back = de_from_stored(read_model_files(files["weights.safetensors"], files["spec.json"]))
    x = torch.randn(4, f, generator=g)
    for a, b in zip(model.predict(x), back.predict(x), strict=True):
        torch.testing.assert_close(a, b)
    assert back.genes == model.genes and back.log2_threshold == 1.5
