"""Backbone factory, save/load round trip and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from histcode.ssl.backbone import BACKBONES, create_encoder, load_encoder, save_encoder


@pytest.mark.parametrize("px", [32, 64])
def test_resnet18_trunc_maps_images_to_256d(px: int) -> None:
    torch.manual_seed(0)
    enc = create_encoder("resnet18_trunc").eval()
    x = torch.rand(2, 3, px, px)
    with torch.no_grad():
        fmap = enc.forward_features(x)
        out = enc(x)
    assert enc.dim == 256 and out.shape == (2, 256)
    assert fmap.shape == (2, 256, px // 16, px // 16)  # cut after layer3: stride 16
    torch.testing.assert_close(out, fmap.mean(dim=(2, 3)))


def test_registry_dims_match_paper_backbone() -> None:
    assert BACKBONES["resnet50_trunc"].dim == 1024 and BACKBONES["resnet50_trunc"].out_index == 3


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown encoder 'resnet51'.*resnet18_trunc.*resnet50_trunc"):
        create_encoder("resnet51")


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ImageNet weights file for resnet18_trunc not found"):
        create_encoder("resnet18_trunc", pretrained_weights=tmp_path / "nope.pth")


def test_local_weights_file_is_loaded(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(5)
    full = timm.create_model("resnet18", pretrained=False)
    torch.save(full.state_dict(), tmp_path / "r18.pth")
    enc = create_encoder("resnet18_trunc", pretrained_weights=tmp_path / "r18.pth")
    torch.testing.assert_close(enc.trunk.conv1.weight, full.conv1.weight)
    torch.testing.assert_close(enc.trunk.layer3[0].conv1.weight, full.layer3[0].conv1.weight)


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    enc = create_encoder("resnet18_trunc").eval()
    save_encoder(enc, tmp_path / "enc", {"method": "adco"})
    again = load_encoder(tmp_path / "enc")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), enc(x), rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="not an encoder directory"):
        load_encoder(tmp_path / "missing")


def test_saved_encoder_is_byte_identical_across_saves(tmp_path: Path) -> None:
    """Same weights → same file bytes (DVC hashes it; torch names the zip root after the file it saves to, so a
    save through a random temp name used to differ every time)."""
    import hashlib

    torch.manual_seed(0)
    enc = create_encoder("resnet10t_trunc")
    digests = set()
    for i in range(2):
        out = save_encoder(enc, tmp_path / f"enc{i}", meta={"seed": 0})
        digests.add(hashlib.sha256((out / "encoder.pt").read_bytes()).hexdigest())
    assert len(digests) == 1
    loaded = torch.load(tmp_path / "enc0" / "encoder.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(loaded[k], v) for k, v in enc.state_dict().items())
