"""Registered models as data, not code: safetensors weights + a JSON architecture spec + sha256 digests.

A model version holds ``weights.safetensors`` (the state dict) and ``spec.json`` (``{"format", "kind",
"arch", "meta", "weights_sha256"}``). Loading never unpickles anything: the architecture is rebuilt by the
builder registered for ``kind`` (the project's own code, chosen by a fixed table, never by a name read from
the artifact), then the tensors are loaded. The registry tags each version with the files' sha256 and
``load_verified`` refuses, in one line, any file whose digest differs. New model kinds add a builder with
``register_kind``; new MIL poolings need nothing here (the MIL spec is ``pooling`` + its kwargs, built by the
pooling registry).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from histcode.errors import HistcodeError

FORMAT = "histcode-model/1"
WEIGHTS_FILE = "weights.safetensors"
SPEC_FILE = "spec.json"


class IntegrityError(HistcodeError, RuntimeError):
    """A model file does not match the digest recorded when it was registered."""


Builder = Callable[[dict[str, Any], dict[str, Any]], nn.Module]
Describer = Callable[[nn.Module], "tuple[str, dict[str, Any], dict[str, Any]] | None"]
_BUILDERS: dict[str, Builder] = {}
_DESCRIBERS: list[Describer] = []


def register_kind(kind: str, builder: Builder, describer: Describer) -> None:
    """``builder(arch, meta) → module``; ``describer(module) → (kind, arch, meta)`` or None if not its kind."""
    _BUILDERS[kind] = builder
    _DESCRIBERS.append(describer)


def _builtin() -> None:
    if _BUILDERS:
        return

    def mil_build(arch: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        from histcode.mil.model import build_mil

        return build_mil(arch, meta=meta)

    def mil_describe(m: nn.Module) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        from histcode.mil.model import MilClassifier

        return ("mil", m.spec(), dict(m.meta)) if isinstance(m, MilClassifier) else None

    def enc_build(arch: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        from histcode.ssl.backbone import create_encoder

        return create_encoder(str(arch["backbone"]))

    def enc_describe(m: nn.Module) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        from histcode.ssl.backbone import TruncatedEncoder

        return ("encoder", {"backbone": m.name, "dim": m.dim}, {}) if isinstance(m, TruncatedEncoder) else None

    def de_build(arch: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        from histcode.genes.heads import DEModel

        return DEModel(int(arch["in_dim"]), [str(g) for g in arch["genes"]])

    def de_describe(m: nn.Module) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        from histcode.genes.heads import DEModel

        return ("de", {"in_dim": m.in_dim, "genes": list(m.genes)}, {}) if isinstance(m, DEModel) else None

    def de_linear_build(arch: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        import torch

        from histcode.genes.heads import LinearDEModel

        f, g = int(arch["in_dim"]), len(arch["genes"])
        z = torch.zeros  # shapes only: load_state_dict fills the fitted buffers
        return LinearDEModel(z(f, g), z(g), z(f), torch.ones(f), z(g), torch.ones(g), [str(x) for x in arch["genes"]],
                             float(arch["log2_threshold"]))

    def de_linear_describe(m: nn.Module) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        from histcode.genes.heads import LinearDEModel

        if not isinstance(m, LinearDEModel):
            return None
        return ("de_linear", {"in_dim": m.in_dim, "genes": list(m.genes), "log2_threshold": m.log2_threshold}, {})

    register_kind("mil", mil_build, mil_describe)
    register_kind("encoder", enc_build, enc_describe)
    register_kind("de", de_build, de_describe)
    register_kind("de_linear", de_linear_build, de_linear_describe)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe(model: nn.Module) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(kind, arch, meta) of a model the registry knows how to rebuild; TypeError otherwise."""
    _builtin()
    for fn in _DESCRIBERS:
        found = fn(model)
        if found is not None:
            return found
    raise TypeError(f"{type(model).__name__}: no registered model kind rebuilds it; known kinds: "
                    f"{sorted(_BUILDERS)} (add one with histcode.registry.safe_model.register_kind)")


def write_model_files(model: nn.Module, out_dir: str | Path) -> dict[str, Path]:
    """Write ``weights.safetensors`` + ``spec.json`` into ``out_dir``; returns {file name: path}."""
    from safetensors.torch import save_file

    kind, arch, meta = describe(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    weights = out / WEIGHTS_FILE
    save_file(state, str(weights), metadata={"format": FORMAT, "kind": kind})
    spec = {"format": FORMAT, "kind": kind, "arch": arch, "meta": meta, "weights_sha256": sha256(weights)}
    spec_path = out / SPEC_FILE
    spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True, default=str) + "\n")
    return {WEIGHTS_FILE: weights, SPEC_FILE: spec_path}


def build_from_files(weights: str | Path, spec_path: str | Path) -> nn.Module:
    """Rebuild the module from a spec and a safetensors file (eval mode); the spec's weight digest is checked."""
    from safetensors.torch import load_file

    _builtin()
    try:
        spec = json.loads(Path(spec_path).read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{spec_path}: unreadable model spec ({exc})") from exc
    if not isinstance(spec, dict) or spec.get("format") != FORMAT or spec.get("kind") not in _BUILDERS:
        raise IntegrityError(f"{spec_path}: not a {FORMAT} spec of a known kind {sorted(_BUILDERS)}")
    if spec.get("weights_sha256") and sha256(weights) != spec["weights_sha256"]:
        raise IntegrityError(f"{weights}: sha256 differs from its spec: the weights were replaced; refusing to load")
    model = _BUILDERS[spec["kind"]](dict(spec["arch"]), dict(spec.get("meta") or {}))
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


def verify(files: dict[str, Path], digests: dict[str, str], where: str) -> None:
    """Every file must have a recorded digest and match it; one-line ``IntegrityError`` otherwise."""
    for name, path in files.items():
        want = digests.get(name)
        if not want:
            raise IntegrityError(f"{where}: no sha256 recorded for {name}; it was registered before safe "
                                 "loading existed: retrain it with `dvc repro`")
        got = sha256(path)
        if got != want:
            raise IntegrityError(f"{where}: {name} sha256 {got[:12]}… does not match the registered "
                                 f"{want[:12]}…: the artifact was modified; refusing to load it")
