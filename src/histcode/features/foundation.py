"""Pathology foundation encoders as data: name → timm architecture, preprocessing, output, licence, weights.

Every entry is checked against its model card and TRIDENT's encoder definitions (the values are published
constants; tests compare them to ``PUBLISHED`` in tests/features/test_foundation.py). Models are built with
``pretrained=False`` and weights come only from a local file or the offline Hugging Face cache: nothing is
ever downloaded. The built module is self-contained like ``TruncatedEncoder``: it takes plain [0, 1] RGB tiles
of any size and applies the model's own resize / crop / mean-std, so extraction code stays encoder-agnostic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from histcode.errors import HistcodeError

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
OPENAI_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
HOPTIMUS = ((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517))
WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")

Output = Literal["cls", "cls+mean", "avg"]


@dataclass(frozen=True)
class FoundationSpec:
    """One published encoder. ``timm_kwargs`` are JSON-able; ``mlp_layer``/``act_layer`` are named
    ("swiglu_packed", "silu") and resolved at build time. ``output``: ``cls`` = class token after the final
    norm; ``cls+mean`` = class token ⊕ mean of the patch tokens (register tokens excluded); ``avg`` = global
    average of the last feature map (CNNs, Swin)."""

    name: str
    official: str
    timm_name: str
    timm_kwargs: Mapping[str, Any]
    dim: int
    input_px: int
    resize_px: int
    interpolation: Literal["bilinear", "bicubic"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output: Output
    licence: str
    obtain: str
    hf_repo: str | None = None
    weight_files: tuple[str, ...] = WEIGHT_FILES
    stem: Literal["patch", "ctranspath_convstem"] = "patch"
    layout: Literal["timm", "dinov2_transformers"] = "timm"  # key layout of the published weight file
    buildable: str = ""  # non-empty: why HistCode cannot build it (the entry stays as documented data)
    tiny: Mapping[str, Any] = field(default_factory=lambda: {"depth": 2, "embed_dim": 48, "num_heads": 4})

    @property
    def preprocessing(self) -> str:
        crop = f", centre crop {self.input_px}" if self.resize_px != self.input_px else ""
        return f"resize {self.resize_px} ({self.interpolation}){crop}, mean {self.mean}, std {self.std}"


_VIT_TINY = {"depth": 2, "embed_dim": 48, "num_heads": 4}
FOUNDATION: dict[str, FoundationSpec] = {}


def register_foundation(spec: FoundationSpec) -> FoundationSpec:
    """Add (or replace) a registry entry; tests register tiny same-family variants this way."""
    FOUNDATION[spec.name] = spec
    return spec


for _spec in (
    FoundationSpec(
        "uni", "UNI (MahmoodLab/UNI, ViT-L/16)", "vit_large_patch16_224",
        {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": True},
        1024, 224, 224, "bilinear", *IMAGENET, "cls", "CC-BY-NC-ND-4.0 (gated, academic research only)",
        "request access at https://huggingface.co/MahmoodLab/UNI and download pytorch_model.bin", "MahmoodLab/UNI"),
    FoundationSpec(
        "uni2_h", "UNI2-h (MahmoodLab/UNI2-h, ViT-H/14, 8 registers)", "vit_giant_patch14_224",
        {"img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5, "embed_dim": 1536,
         "mlp_ratio": 2.66667 * 2, "num_classes": 0, "no_embed_class": True, "mlp_layer": "swiglu_packed",
         "act_layer": "silu", "reg_tokens": 8, "dynamic_img_size": True},
        1536, 224, 224, "bilinear", *IMAGENET, "cls", "CC-BY-NC-ND-4.0 (gated, academic research only)",
        "request access at https://huggingface.co/MahmoodLab/UNI2-h and download pytorch_model.bin",
        "MahmoodLab/UNI2-h", tiny={**_VIT_TINY, "mlp_ratio": 2.66667 * 2}),
    FoundationSpec(
        "virchow2", "Virchow2 (paige-ai/Virchow2, ViT-H/14, 4 registers)", "vit_huge_patch14_224",
        {"img_size": 224, "init_values": 1e-5, "num_classes": 0, "reg_tokens": 4, "mlp_ratio": 5.3375,
         "global_pool": "", "dynamic_img_size": True, "mlp_layer": "swiglu_packed", "act_layer": "silu"},
        2560, 224, 224, "bicubic", *IMAGENET, "cls+mean", "CC-BY-NC-ND-4.0 (gated, non-commercial)",
        "request access at https://huggingface.co/paige-ai/Virchow2 and download pytorch_model.bin",
        "paige-ai/Virchow2", tiny={**_VIT_TINY, "mlp_ratio": 5.3375}),
    FoundationSpec(
        "conch", "CONCH v1 vision tower (MahmoodLab/CONCH, ViT-B/16 @448 + CoCa attentional pooler)",
        "vit_base_patch16_224", {"img_size": 448, "num_classes": 0},
        512, 448, 448, "bicubic", *OPENAI_CLIP, "cls", "CC-BY-NC-ND-4.0 (gated, academic research only)",
        "request access at https://huggingface.co/MahmoodLab/CONCH and install the `conch` package",
        "MahmoodLab/CONCH",
        buildable="its 512-d image embedding comes from CoCa's attentional pooler in the `conch` package, which "
                  "timm cannot build; embed with CONCH/TRIDENT and import the folder via extract.sources"),
    FoundationSpec(
        "h_optimus_0", "H-optimus-0 (bioptimus/H-optimus-0, ViT-g/14, 4 registers)", "vit_giant_patch14_reg4_dinov2",
        {"num_classes": 0, "img_size": 224, "global_pool": "token", "init_values": 1e-5, "dynamic_img_size": False},
        1536, 224, 224, "bilinear", *HOPTIMUS, "cls", "Apache-2.0",
        "download pytorch_model.bin from https://huggingface.co/bioptimus/H-optimus-0", "bioptimus/H-optimus-0"),
    FoundationSpec(
        "h_optimus_1", "H-optimus-1 (bioptimus/H-optimus-1, ViT-g/14, 4 registers)", "vit_giant_patch14_reg4_dinov2",
        {"num_classes": 0, "img_size": 224, "global_pool": "token", "init_values": 1e-5, "dynamic_img_size": False},
        1536, 224, 224, "bilinear", *HOPTIMUS, "cls", "Bioptimus non-commercial licence (gated)",
        "request access at https://huggingface.co/bioptimus/H-optimus-1 and download pytorch_model.bin",
        "bioptimus/H-optimus-1"),
    FoundationSpec(
        "phikon_v2", "Phikon-v2 (owkin/phikon-v2, DINOv2 ViT-L/16)", "vit_large_patch16_224",
        {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": True},
        1024, 224, 224, "bilinear", *IMAGENET, "cls", "Owkin non-commercial licence",
        "download model.safetensors from https://huggingface.co/owkin/phikon-v2 (transformers Dinov2 layout, "
        "converted to timm keys on load)", "owkin/phikon-v2", weight_files=("model.safetensors",),
        layout="dinov2_transformers"),
    FoundationSpec(
        "gigapath", "Prov-GigaPath tile encoder (prov-gigapath/prov-gigapath, ViT-g/16)", "vit_giant_patch14_dinov2",
        {"img_size": 224, "in_chans": 3, "patch_size": 16, "embed_dim": 1536, "depth": 40, "num_heads": 24,
         "mlp_ratio": 5.33334, "num_classes": 0},
        1536, 224, 256, "bicubic", *IMAGENET, "cls", "Prov-GigaPath licence (gated, research only)",
        "request access at https://huggingface.co/prov-gigapath/prov-gigapath and download pytorch_model.bin",
        "prov-gigapath/prov-gigapath", tiny={**_VIT_TINY, "mlp_ratio": 5.33334}),
    FoundationSpec(
        "ctranspath", "CTransPath (Swin-T + conv stem; CHIEF_CTransPath.pth)", "swin_tiny_patch4_window7_224",
        {"num_classes": 0}, 768, 224, 224, "bilinear", *IMAGENET, "avg", "GPL-3.0",
        "download CHIEF_CTransPath.pth from https://huggingface.co/datasets/MahmoodLab/hest-bench "
        "(fm_v1/ctranspath) or ctranspath.pth from https://github.com/Xiyue-Wang/TransPath",
        None, weight_files=("CHIEF_CTransPath.pth", "ctranspath.pth"), stem="ctranspath_convstem",
        tiny={"depths": (1, 1, 1, 1), "embed_dim": 24}),
    FoundationSpec(
        "resnet50_trunc", "ResNet50-trunc (ImageNet ResNet-50 cut after layer3, timm resnet50.tv_in1k)", "resnet50",
        {"features_only": True, "out_indices": (3,)}, 1024, 224, 224, "bilinear", *IMAGENET, "avg",
        "BSD-3-Clause (torchvision weights)",
        "download pytorch_model.bin from https://huggingface.co/timm/resnet50.tv_in1k", "timm/resnet50.tv_in1k",
        tiny={"layers": [1, 1, 1, 1]}),
):
    register_foundation(_spec)


class ConvStem(nn.Module):
    """CTransPath's patch embedding: two stride-2 3×3 conv-BN-ReLU and a 1×1 conv (stride 4 overall), in
    timm's ``PatchEmbed`` calling convention (NHWC output for Swin)."""

    def __init__(self, img_size: int = 224, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96,
                 norm_layer: Any = None, output_fmt: str = "NHWC", **_: Any) -> None:
        super().__init__()
        if patch_size != 4:
            raise ValueError(f"ConvStem: patch_size must be 4, got {patch_size}")
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (self.img_size[0] // 4, self.img_size[1] // 4)
        self.output_fmt = output_fmt
        mid = max(1, embed_dim // 8)
        layers: list[nn.Module] = []
        for cin, cout in ((in_chans, mid), (mid, 2 * mid)):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers.append(nn.Conv2d(2 * mid, embed_dim, 1))
        self.proj = nn.Sequential(*layers)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1) if self.output_fmt == "NHWC" else x.flatten(2).transpose(1, 2))


def timm_kwargs(spec: FoundationSpec, *, tiny: bool = False) -> dict[str, Any]:
    """The spec's kwargs with named layers resolved (``tiny``: the 2-layer same-family test variant)."""
    import timm

    kw = {**spec.timm_kwargs, **(spec.tiny if tiny else {})}
    named = {"swiglu_packed": timm.layers.SwiGLUPacked, "silu": nn.SiLU}
    for key in ("mlp_layer", "act_layer"):
        if isinstance(kw.get(key), str):
            kw[key] = named[kw[key]]
    if spec.stem == "ctranspath_convstem":
        kw["embed_layer"] = ConvStem
    return kw


def build_trunk(spec: FoundationSpec, *, tiny: bool = False) -> nn.Module:
    """timm model of ``spec`` with random init (``pretrained=False``; weights are loaded separately)."""
    import timm

    if spec.buildable:
        raise ValueError(f"{spec.name}: {spec.official} cannot be built here: {spec.buildable}.")
    return timm.create_model(spec.timm_name, pretrained=False, **timm_kwargs(spec, tiny=tiny))


def output_dim(spec: FoundationSpec, *, tiny: bool = False) -> int:
    """Embedding width of ``spec`` from its architecture, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return FoundationEncoder(build_trunk(spec, tiny=tiny), spec).dim


def tiny_variant(name: str) -> FoundationSpec:
    """A registered 2-layer, narrow, same-family copy of ``name`` (``<name>_tiny``) for tests and smoke runs:
    same timm architecture, token layout, preprocessing and output rule, random-init in seconds."""
    spec = FOUNDATION[name]
    small = dataclasses.replace(spec, name=f"{name}_tiny", timm_kwargs={**spec.timm_kwargs, **spec.tiny}, tiny={})
    return register_foundation(dataclasses.replace(small, dim=output_dim(small)))


def _features_only(trunk: nn.Module) -> bool:
    """timm ``features_only`` models (truncated CNNs) return a list of maps and know their channels."""
    return hasattr(getattr(trunk, "feature_info", None), "channels")


class FoundationEncoder(nn.Module):
    """[0, 1] RGB tiles of any size → the model's resize/crop/normalisation → trunk → (B, dim) embedding."""

    def __init__(self, trunk: nn.Module, spec: FoundationSpec) -> None:
        super().__init__()
        self.trunk = trunk
        self.name = spec.name
        self.spec = spec
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.n_prefix = int(getattr(trunk, "num_prefix_tokens", 1))
        self.dim = self._out_dim()

    def _out_dim(self) -> int:
        width = int(getattr(self.trunk, "num_features", 0))
        if _features_only(self.trunk):
            width = int(self.trunk.feature_info.channels()[-1])
        return 2 * width if self.spec.output == "cls+mean" else width

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) [0, 1] → resized, centre-cropped, normalised (B, 3, input_px, input_px)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected (B, 3, H, W) input, got shape {tuple(x.shape)}")
        s = self.spec
        if x.shape[-2:] != (s.resize_px, s.resize_px):
            x = F.interpolate(x, size=(s.resize_px, s.resize_px), mode=s.interpolation, antialias=True,
                              align_corners=False).clamp_(0, 1)
        if s.resize_px != s.input_px:
            o = (s.resize_px - s.input_px) // 2
            x = x[..., o:o + s.input_px, o:o + s.input_px]
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        if self.spec.output == "avg":
            out = self.trunk(x)
            return out[-1].mean(dim=(2, 3)) if isinstance(out, list | tuple) else out
        tokens = self.trunk.forward_features(x)  # (B, prefix + patches, D), after the final norm
        if self.spec.output == "cls":
            return tokens[:, 0]
        return torch.cat([tokens[:, 0], tokens[:, self.n_prefix:].mean(dim=1)], dim=-1)


# ---- weights: a local file, a local folder or the offline Hugging Face cache; never a download ----

class WeightsMissing(HistcodeError, FileNotFoundError):
    """A foundation model's weights are not on this machine; the message says how to obtain them."""


def missing_weights_message(spec: FoundationSpec, tried: str | None) -> str:
    where = f"{tried} is neither a weight file nor a folder with {'/'.join(spec.weight_files)}; " if tried else ""
    return (f"{spec.name}: no local weights for {spec.official}: {where}{spec.obtain}, then set "
            f"extract.sources.{spec.name} to the file (or cache it with huggingface-cli and set HF_HUB_OFFLINE=1); "
            f"licence: {spec.licence}.")


def locate_weights(spec: FoundationSpec, source: str | None) -> Path:
    """The weight file of ``spec``: ``source`` (a file, or a folder holding one of ``weight_files``), else the
    offline Hugging Face cache; a one-line ``WeightsMissing`` (a ``FileNotFoundError``) naming the model and how
    to obtain it."""
    if source:
        p = Path(source).expanduser()
        if p.is_file():
            return p
        for name in spec.weight_files if p.is_dir() else ():
            if (p / name).is_file():
                return p / name
        raise WeightsMissing(missing_weights_message(spec, source))
    if spec.hf_repo:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub ships with timm
            try_to_load_from_cache = None
        for name in spec.weight_files if try_to_load_from_cache else ():
            hit = try_to_load_from_cache(spec.hf_repo, name)  # cache lookup only: no network
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
    raise WeightsMissing(missing_weights_message(spec, None))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (unwrapping ``model``/``state_dict`` wrappers)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict (got {type(state).__name__}); pass the model's weight file.")
    return state


def dinov2_transformers_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face ``Dinov2Model`` keys (Phikon-v2) → timm ``VisionTransformer`` keys (q/k/v fused)."""
    if "embeddings.cls_token" not in state:
        return state
    out = {"cls_token": state["embeddings.cls_token"], "pos_embed": state["embeddings.position_embeddings"],
           "patch_embed.proj.weight": state["embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": state["embeddings.patch_embeddings.projection.bias"],
           "norm.weight": state["layernorm.weight"], "norm.bias": state["layernorm.bias"]}
    i = 0
    while f"encoder.layer.{i}.norm1.weight" in state:
        src, dst = f"encoder.layer.{i}.", f"blocks.{i}."
        att = src + "attention.attention."
        for t in ("weight", "bias"):
            out[dst + f"attn.qkv.{t}"] = torch.cat([state[att + f"{q}.{t}"] for q in ("query", "key", "value")])
            out[dst + f"attn.proj.{t}"] = state[src + f"attention.output.dense.{t}"]
            for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[dst + f"{n}.{t}"] = state[src + f"{n}.{t}"]
        out[dst + "ls1.gamma"] = state[src + "layer_scale1.lambda1"]
        out[dst + "ls2.gamma"] = state[src + "layer_scale2.lambda1"]
        i += 1
    return out


def load_weights(trunk: nn.Module, spec: FoundationSpec, path: Path) -> None:
    """Strictly load ``path`` into ``trunk`` (a wrong file is an error naming the file, not silent garbage)."""
    state = read_state_dict(path)
    if spec.layout == "dinov2_transformers":
        state = dinov2_transformers_to_timm(state)
    if spec.stem == "ctranspath_convstem":
        from timm.models.swin_transformer import checkpoint_filter_fn

        state = {k: v for k, v in checkpoint_filter_fn(state, trunk).items() if not k.startswith("head.")}
    if _features_only(trunk):  # features_only CNN: the truncated part is unused
        wanted = set(trunk.state_dict())
        state = {k: v for k, v in state.items() if k in wanted}
    try:
        missing, unexpected = trunk.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches: another model's (or another size's) weights
        first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)
        raise ValueError(f"{path}: not {spec.official} weights ({first.strip()}); {spec.obtain}.") from None
    missing = [k for k in missing if "relative_position_index" not in k and "attn_mask" not in k]
    if missing or unexpected:
        raise ValueError(f"{path}: not {spec.official} weights in timm layout (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}, {len(missing)}/{len(unexpected)} in all); {spec.obtain}.")


def create_foundation(name: str, *, source: str | None = None) -> tuple[FoundationEncoder, Path]:
    """Build registered encoder ``name`` with its local weights → (encoder in eval mode, weight file)."""
    if name not in FOUNDATION:
        raise ValueError(f"unknown foundation encoder {name!r}; registered: {sorted(FOUNDATION)}")
    spec = FOUNDATION[name]
    if spec.buildable:
        raise ValueError(f"{name}: {spec.official} cannot be built here: {spec.buildable}.")
    path = locate_weights(spec, source)  # before building: a missing file costs nothing
    trunk = build_trunk(spec)
    load_weights(trunk, spec, path)
    return FoundationEncoder(trunk, spec).eval(), path


def describe(spec: FoundationSpec) -> dict[str, Any]:
    """The registry entry as plain data (README table, MLflow params)."""
    d = dataclasses.asdict(spec)
    d["timm_kwargs"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d["timm_kwargs"].items()}
    d["preprocessing"] = spec.preprocessing
    return d
