"""The foundation-encoder registry: published constants, full-size architectures, tiny same-family models
through the real loading path, weights from local files / the offline HF cache only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import v2 as T

from histcode.features.foundation import (
    FOUNDATION,
    FoundationEncoder,
    build_trunk,
    create_foundation,
    dinov2_transformers_to_timm,
    output_dim,
    register_foundation,
    tiny_variant,
)

IMNET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Published values (model cards on Hugging Face; TRIDENT trident/patch_encoder_models/load.py):
# timm architecture, embedding dim, model input, resize side, interpolation, mean/std, output rule, HF repo.
PUBLISHED = {
    "uni": ("vit_large_patch16_224", 1024, 224, 224, "bilinear", IMNET, "cls", "MahmoodLab/UNI"),
    "uni2_h": ("vit_giant_patch14_224", 1536, 224, 224, "bilinear", IMNET, "cls", "MahmoodLab/UNI2-h"),
    "virchow2": ("vit_huge_patch14_224", 2560, 224, 224, "bicubic", IMNET, "cls+mean", "paige-ai/Virchow2"),
    "conch": ("vit_base_patch16_224", 512, 448, 448, "bicubic",
              ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)), "cls", "MahmoodLab/CONCH"),
    "h_optimus_0": ("vit_giant_patch14_reg4_dinov2", 1536, 224, 224, "bilinear",
                    ((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517)), "cls", "bioptimus/H-optimus-0"),
    "h_optimus_1": ("vit_giant_patch14_reg4_dinov2", 1536, 224, 224, "bilinear",
                    ((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517)), "cls", "bioptimus/H-optimus-1"),
    "phikon_v2": ("vit_large_patch16_224", 1024, 224, 224, "bilinear", IMNET, "cls", "owkin/phikon-v2"),
    "gigapath": ("vit_giant_patch14_dinov2", 1536, 224, 256, "bicubic", IMNET, "cls", "prov-gigapath/prov-gigapath"),
    "ctranspath": ("swin_tiny_patch4_window7_224", 768, 224, 224, "bilinear", IMNET, "avg", None),
    "resnet50_trunc": ("resnet50", 1024, 224, 224, "bilinear", IMNET, "avg", "timm/resnet50.tv_in1k"),
}
# parameter counts of the published models (millions, model cards / papers), checked on the meta device
PARAMS_M = {"uni": 303, "uni2_h": 681, "virchow2": 631, "h_optimus_0": 1134, "gigapath": 1134, "phikon_v2": 303}
BUILDABLE = [n for n in PUBLISHED if not FOUNDATION[n].buildable]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_registry_holds_the_published_constants(name: str) -> None:
    s = FOUNDATION[name]
    timm_name, dim, inp, resize, interp, (mean, std), out, repo = PUBLISHED[name]
    assert (s.timm_name, s.dim, s.input_px, s.resize_px, s.interpolation, s.output, s.hf_repo) == (
        timm_name, dim, inp, resize, interp, out, repo)
    np.testing.assert_allclose(s.mean, mean, atol=1e-7)
    np.testing.assert_allclose(s.std, std, atol=1e-7)
    assert s.licence and s.official and "http" in s.obtain


@pytest.mark.parametrize("name", BUILDABLE)
def test_full_size_architecture_gives_the_published_dim(name: str) -> None:
    """The real config, built with pretrained=False on the meta device (shapes only: no memory, no init)."""
    assert output_dim(FOUNDATION[name]) == FOUNDATION[name].dim
    if name in PARAMS_M:
        with torch.device("meta"):
            n = sum(p.numel() for p in build_trunk(FOUNDATION[name]).parameters()) / 1e6
        assert abs(n - PARAMS_M[name]) / PARAMS_M[name] < 0.02, n


def _reference(spec, trunk: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The published recipe with torchvision transforms and timm's own forward (independent of our code)."""
    interp = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[spec.interpolation]
    # torchvision on PIL images: resized pixels stay in [0, 255] (bicubic overshoot clipped), hence the clamp
    prep = T.Compose([T.Resize(spec.resize_px, interpolation=interp, antialias=True), lambda t: t.clamp(0, 1),
                      T.CenterCrop(spec.input_px), T.Normalize(spec.mean, spec.std)])
    y = trunk(prep(x))
    if spec.output == "cls+mean":  # Virchow2 card: class token ⊕ mean of patch tokens after the 1 + 4 registers
        return torch.cat([y[:, 0], y[:, 5:].mean(1)], dim=-1)
    return y[-1].mean((2, 3)) if isinstance(y, list) else y


@pytest.mark.parametrize("name", BUILDABLE)
def test_tiny_same_family_model_loads_from_a_local_file_and_embeds_like_the_recipe(name: str, tmp_path: Path) -> None:
    spec = tiny_variant(name)
    torch.manual_seed(0)
    trunk = build_trunk(spec).eval()
    weights = tmp_path / spec.weight_files[0]  # the published file name, in the published container
    if weights.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(trunk.state_dict(), str(weights))
    else:
        torch.save({"model": trunk.state_dict()} if name == "ctranspath" else trunk.state_dict(), weights)
    enc, path = create_foundation(spec.name, source=str(tmp_path))  # a folder holding the weight file
    assert path == weights and enc.dim == spec.dim
    x = torch.rand(3, 3, 96, 96)
    with torch.no_grad():
        got, ref = enc(x), _reference(spec, trunk, x.clone())
    assert got.shape == (3, spec.dim)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_missing_weights_is_one_line_naming_the_model_and_where_to_get_it(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError) as err:
        create_foundation("uni")
    msg = str(err.value)
    assert "\n" not in msg and "UNI (MahmoodLab/UNI" in msg and "https://huggingface.co/MahmoodLab/UNI" in msg
    assert "extract.sources.uni" in msg
    with pytest.raises(FileNotFoundError, match=r"nowhere\.bin is neither a weight file"):
        create_foundation("uni", source=str(tmp_path / "nowhere.bin"))
    with pytest.raises(ValueError, match="cannot be built here"):
        create_foundation("conch")


def test_offline_hf_cache_is_used_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = register_foundation(dataclasses.replace(tiny_variant("uni"), name="uni_cached", hf_repo="MahmoodLab/UNI"))
    snap = tmp_path / "hf" / "models--MahmoodLab--UNI" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (tmp_path / "hf" / "models--MahmoodLab--UNI" / "refs").mkdir()
    (tmp_path / "hf" / "models--MahmoodLab--UNI" / "refs" / "main").write_text("abc123")
    torch.save(build_trunk(spec).state_dict(), snap / "pytorch_model.bin")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    _, path = create_foundation("uni_cached")
    assert path == snap / "pytorch_model.bin"


def test_weights_of_another_model_are_refused_naming_the_file(tmp_path: Path) -> None:
    tiny_variant("uni")
    other = tmp_path / "virchow.bin"
    torch.save(build_trunk(tiny_variant("virchow2")).state_dict(), other)
    with pytest.raises(ValueError, match=r"virchow\.bin: not UNI"):
        create_foundation("uni_tiny", source=str(other))


def test_phikon_v2_transformers_layout_converts_to_timm(tmp_path: Path) -> None:
    """A Dinov2Model-keyed checkpoint (as owkin/phikon-v2 ships) loads into the timm ViT with equal outputs."""
    spec = tiny_variant("phikon_v2")
    trunk = build_trunk(spec).eval()
    sd = trunk.state_dict()
    hf = {"embeddings.cls_token": sd["cls_token"], "embeddings.mask_token": torch.zeros(1, sd["cls_token"].shape[-1]),
          "embeddings.position_embeddings": sd["pos_embed"],
          "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
          "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
          "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"]}
    for i in range(2):
        b, e = f"blocks.{i}.", f"encoder.layer.{i}."
        for t in ("weight", "bias"):
            q, k, v = sd[b + f"attn.qkv.{t}"].chunk(3)
            hf.update({e + f"attention.attention.query.{t}": q, e + f"attention.attention.key.{t}": k,
                       e + f"attention.attention.value.{t}": v,
                       e + f"attention.output.dense.{t}": sd[b + f"attn.proj.{t}"]})
            hf.update({e + f"{n}.{t}": sd[b + f"{n}.{t}"] for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2")})
        hf[e + "layer_scale1.lambda1"], hf[e + "layer_scale2.lambda1"] = sd[b + "ls1.gamma"], sd[b + "ls2.gamma"]
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in hf.items()}, str(tmp_path / "model.safetensors"))
    assert set(dinov2_transformers_to_timm(hf)) == set(sd)
    enc, _ = create_foundation(spec.name, source=str(tmp_path))
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), FoundationEncoder(trunk, spec)(x))
