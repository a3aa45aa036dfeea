"""Registered models as data, not code: safetensors weights + a JSON architecture spec + sha256 digests.

A model version holds ``weights.safetensors`` (the state dict) and ``spec.json`` (``{"format", "kind",
"arch", "meta", "weights_sha256"}``). Loading never unpickles anything: the registry returns the tensors and
the spec as a ``StoredModel`` and the package that owns the kind rebuilds its own module from it (the
project's own code, never a name read from the artifact). The registry tags each version with the files'
sha256 and refuses, in one line, any file whose digest differs. A module is registrable when it defines
``registry_spec() → (kind, arch, meta)``; a new kind adds its name to ``KINDS`` and a builder in its package;
new MIL poolings need nothing here (the MIL spec is ``pooling`` + its kwargs, built by the pooling registry).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from histcode.errors import HistcodeError

FORMAT = "histcode-model/1"
WEIGHTS_FILE = "weights.safetensors"
SPEC_FILE = "spec.json"


class IntegrityError(HistcodeError, RuntimeError):
    """A model file does not match the digest recorded when it was registered."""


KINDS = ("mil", "encoder", "de", "de_linear")  # model kinds a spec may name; each package builds its own


@dataclass(frozen=True)
class StoredModel:
    """A registered model as data: its ``kind``, architecture ``arch``, ``meta`` and tensors ``state``.

    The package that owns the kind rebuilds the module from it (``histcode.mil.model.mil_from_stored``,
    ``histcode.ssl.backbone.encoder_from_stored``, ``histcode.genes.heads.de_from_stored``)."""

    kind: str
    arch: dict[str, Any]
    meta: dict[str, Any]
    state: dict[str, Any]

    def load_into(self, model: nn.Module, kind: str | tuple[str, ...]) -> nn.Module:
        """Load ``state`` into a freshly built module of ``kind`` (eval mode); TypeError for another kind."""
        kinds = (kind,) if isinstance(kind, str) else kind
        if self.kind not in kinds:
            raise TypeError(f"a {self.kind!r} model cannot be loaded as {' or '.join(map(repr, kinds))}")
        model.load_state_dict(self.state)
        return model.eval()


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe(model: nn.Module) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(kind, arch, meta) from the model's own ``registry_spec()``; TypeError for a model without one."""
    spec = getattr(model, "registry_spec", None)
    if spec is None:
        raise TypeError(f"{type(model).__name__}: no registered model kind rebuilds it; known kinds: "
                        f"{sorted(KINDS)} (a registrable module defines registry_spec() and its package a "
                        "builder from StoredModel)")
    kind, arch, meta = spec()
    return kind, arch, meta


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


def read_model_files(weights: str | Path, spec_path: str | Path) -> StoredModel:
    """Read a spec and its safetensors file (the spec's weight digest is checked); the owner of the kind
    builds the module from the result."""
    from safetensors.torch import load_file

    try:
        spec = json.loads(Path(spec_path).read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{spec_path}: unreadable model spec ({exc})") from exc
    if not isinstance(spec, dict) or spec.get("format") != FORMAT or spec.get("kind") not in KINDS:
        raise IntegrityError(f"{spec_path}: not a {FORMAT} spec of a known kind {sorted(KINDS)}")
    if spec.get("weights_sha256") and sha256(weights) != spec["weights_sha256"]:
        raise IntegrityError(f"{weights}: sha256 differs from its spec: the weights were replaced; refusing to load")
    return StoredModel(str(spec["kind"]), dict(spec["arch"]), dict(spec.get("meta") or {}), load_file(str(weights)))


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
