"""Collation with in-worker stain normalisation."""

from __future__ import annotations

import torch

from histcode.slides.tile_dataset import TileCollate


def test_collate_normalises_and_keeps_errors() -> None:
    tiles = [torch.full((3, 4, 4), v, dtype=torch.uint8) for v in (0, 100, 255)]
    out, errors = TileCollate(lambda x: 1.0 - x)([(t, e) for t, e in zip(tiles, ["", "bad", ""], strict=True)])
    assert out.dtype == torch.uint8 and out.shape == (3, 3, 4, 4)
    assert out[:, 0, 0, 0].tolist() == [255, 155, 0] and errors == ["", "bad", ""]
    plain, errs = TileCollate()(tiles)
    assert torch.equal(plain, torch.stack(tiles)) and errs == ["", "", ""]
