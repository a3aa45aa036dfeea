"""Named encoders for extraction: the trained AdCo encoder, its baselines (SimCLR, ImageNet, random) and the
registered pathology foundation models (``histcode.features.foundation``: UNI, Virchow2, H-optimus, ...)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from histcode.errors import HistcodeError
from histcode.features.config import ExtractConfig
from histcode.features.resume import default_source
from histcode.paths import Paths
from histcode.ssl.backbone import create_encoder, encoder_meta, load_encoder

log = logging.getLogger(__name__)

BUILTIN = ("adco", "simclr", "imagenet", "random", "histomics")
DEFAULT_BACKBONE = "resnet18_trunc"


class EncoderUnavailable(HistcodeError, RuntimeError):
    """An optional baseline cannot be built here (e.g. no local ImageNet weights): skip it, don't fail."""


@dataclass
class NamedEncoder:
    name: str
    module: nn.Module
    uri: str
    dim: int
    fingerprint: str
    input_px: int = 0  # tile side the encoder wants to see (0: extract.input_px)


def fingerprint(module: nn.Module) -> str:
    """Content hash of the weights: features of a re-trained encoder at the same path are not "finished"."""
    import hashlib

    h = hashlib.sha1()
    for key, tensor in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _trained(name: str, source: str) -> nn.Module:
    meta = encoder_meta(source)
    if meta and meta.get("method") not in (None, name) and name in ("adco", "simclr"):
        raise ValueError(f"{source}: holds a {meta.get('method')!r} encoder, not {name!r}; point "
                         f"extract.sources.{name} at the right directory or re-run pretrain with method {name}.")
    return load_encoder(source)


def resolve_encoder(name: str, cfg: ExtractConfig, paths: Paths, *, seed: int, tile_um: float | None = None,
                    stain_reference: Path | None = None) -> NamedEncoder:
    """Build encoder ``name``; ``EncoderUnavailable`` for an optional baseline that cannot be built here.

    ``histomics`` (hand-crafted nuclear/stain features, ``histcode.features.histomics``) needs the tiles'
    physical side ``tile_um`` and separates stains with the vectors of ``stain_reference`` (the Macenko
    defaults when extraction does not normalise).

    A registered foundation model needs its weights locally (``extract.sources.<name>``: file or folder, else
    the offline Hugging Face cache); without them a one-line ``FileNotFoundError`` says how to obtain them."""
    from histcode.features.foundation import FOUNDATION, create_foundation
    from histcode.features.resume import file_digest

    if name in FOUNDATION:
        module, weights = create_foundation(name, source=cfg.sources.get(name))
        spec = FOUNDATION[name]
        return NamedEncoder(name=name, module=module, uri=f"{spec.official}:{weights.resolve()}", dim=module.dim,
                            fingerprint=file_digest(weights), input_px=spec.resize_px)
    if name in cfg.sources or name in ("adco", "simclr"):
        source = cfg.sources.get(name, default_source(name, paths))
        if not source.startswith("models:/") and not Path(source).exists():
            raise FileNotFoundError(f"{source}: encoder {name!r} not found; run `dvc repro pretrain` (SimCLR: "
                                    "`python pipelines/pretrain.py --method simclr --out data/models/encoder_simclr`)"
                                    f" or set extract.sources.{name}.")
        module = _trained(name, source)
        uri = source
    elif name == "imagenet":
        weights = cfg.imagenet_weights
        if weights is None or not Path(weights).is_file():
            raise EncoderUnavailable(f"imagenet baseline skipped: extract.imagenet_weights={weights!r} is not a "
                                     f"local file (weights are never downloaded).")
        module = create_encoder(cfg.imagenet_backbone, pretrained_weights=weights)
        uri = f"imagenet:{cfg.imagenet_backbone}:{Path(weights).resolve()}"
    elif name == "histomics":
        module, uri = _histomics(cfg, tile_um, stain_reference)
    elif name == "random":
        adco_meta = encoder_meta(cfg.sources.get("adco", default_source("adco", paths)))
        backbone = cfg.backbone or adco_meta.get("backbone") or DEFAULT_BACKBONE
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            module = create_encoder(backbone)
        uri = f"random:{backbone}:seed={seed}"
    else:
        raise ValueError(f"extract.encoders: unknown encoder {name!r}; valid: {list(BUILTIN)}, "
                         f"{sorted(FOUNDATION)} or a name with a directory / models:/ URI in extract.sources")
    module.eval()
    dim = int(getattr(module, "dim", 0)) or _probe_dim(module)
    return NamedEncoder(name=name, module=module, uri=uri, dim=dim, fingerprint=fingerprint(module))


def _histomics(cfg: ExtractConfig, tile_um: float | None, stain_reference: Path | None) -> tuple[nn.Module, str]:
    from histcode.features.histomics import HistomicsEncoder
    from histcode.slides.stain.macenko import DEFAULT_HE, DEFAULT_MAX_C

    if tile_um is None or not tile_um > 0:
        raise ValueError("extract.encoders: histomics needs the tiles' physical size, but no slide of the cohort "
                         "records its µm/px; set base.cohorts.<cohort>.default_mpp for slides without MPP metadata "
                         "(or re-run `dvc repro tile` if the coords files predate slide_mpp).")
    he, max_c, ref = DEFAULT_HE, DEFAULT_MAX_C, "macenko-default"
    if cfg.stain and stain_reference is not None:
        from histcode.slides.stain import load_normalizer

        norm = load_normalizer(stain_reference)
        if getattr(norm, "he_ref", None) is not None:
            he, max_c, ref = norm.he_ref.tolist(), norm.max_c_ref.tolist(), str(stain_reference)
    px = cfg.input_px
    return HistomicsEncoder(he, max_c, um_per_px=tile_um / px), f"histomics:{tile_um:g}um@{px}px:stain={ref}"


@torch.no_grad()
def _probe_dim(module: nn.Module) -> int:
    return int(module(torch.zeros(1, 3, 64, 64)).shape[1])
