"""Slide classifier = MIL method (pooling) + linear head (softmax over tumour/normal), plus save/load.

Only the pooling and the head train: tile features are precomputed by the frozen encoder. A saved model
is ``model.pt`` (state dict + architecture spec, rebuilt by ``build_mil``) and a readable ``model.json``;
``load_mil`` also accepts a registry URI ``models:/histcode-mil@champion``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from histcode.atomic import save_torch, write_json
from histcode.mil.pool_base import Pooling
from histcode.mil.pooling import create_pooling

if TYPE_CHECKING:
    from histcode.registry.safe_model import StoredModel

MODEL_FILE = "model.pt"
INDEX_FILE = "mil.json"  # in data/models/mil/: names the primary pooling's sub-directory


@dataclass
class MilOutput:
    """logits (1, C); prob (C,) softmax; scores/weights (N,) per tile (see ``PoolOutput``)."""

    logits: Tensor
    prob: Tensor
    scores: Tensor
    weights: Tensor


class MilClassifier(nn.Module):
    """(N, D) bag of tile features → (1, C) logits. Class 1 is tumour."""

    def __init__(self, pooling: Pooling, n_classes: int = 2, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        self.pooling = pooling
        self.head = nn.Linear(pooling.out_dim, n_classes)
        self.n_classes = n_classes
        self.meta: dict[str, Any] = dict(meta or {})
        # per-feature standardisation fitted on the training tiles (encoders differ wildly in scale)
        self.register_buffer("x_mean", torch.zeros(pooling.in_dim))
        self.register_buffer("x_scale", torch.ones(pooling.in_dim))

    @property
    def in_dim(self) -> int:
        return self.pooling.in_dim

    def set_standardisation(self, mean: Tensor, scale: Tensor) -> None:
        """Inputs become (h - mean) / scale; dimensions with ~zero spread keep scale 1."""
        scale = torch.where(scale > 1e-6, scale, torch.ones_like(scale))
        self.x_mean.copy_(mean.float())
        self.x_scale.copy_(scale.float())

    def _z(self, bag: Tensor) -> Tensor:
        if bag.dim() == 3 and bag.shape[0] == 1:
            bag = bag[0]
        if bag.dim() != 2 or bag.shape[-1] != self.in_dim:
            raise ValueError(f"expected a bag of shape (N, {self.in_dim}), got {tuple(bag.shape)}")
        return (bag.float() - self.x_mean) / self.x_scale

    def _standardised(self, chunks: Iterable[Tensor]) -> Iterable[Tensor]:
        """Standardised chunks, re-iterable when ``chunks`` is (two-pass methods such as DSMIL)."""
        if iter(chunks) is chunks:  # a one-shot iterator stays one
            return _Standardised(self, chunks)._gen()
        return _Standardised(self, chunks)

    def forward(self, bag: Tensor) -> Tensor:
        out = self.pooling(self._z(bag))
        return self.pooling.bag_logits(out, self.head).unsqueeze(0)

    def training_loss(self, bag: Tensor, label: int) -> Tensor:
        """The method's training loss of one bag (cross-entropy, plus CLAM/DSMIL/MIL-RNN terms)."""
        return self.pooling.loss(self.pooling(self._z(bag)), self.head, int(label))

    def forward_full(self, bag: Tensor) -> MilOutput:
        out = self.pooling(self._z(bag))
        logits = self.pooling.bag_logits(out, self.head).unsqueeze(0)
        return MilOutput(logits, torch.softmax(logits[0], 0), out.scores, out.weights)

    @torch.no_grad()
    def predict_stream(self, chunks: Iterable[Tensor]) -> MilOutput:
        """Eval-mode prediction of a bag given as (n_i, D) chunks; memory bounded by the chunk size."""
        was_training = self.training
        self.eval()
        try:
            out = self.pooling.forward_stream(self._standardised(chunks))
            logits = self.pooling.bag_logits(out, self.head).unsqueeze(0)
            return MilOutput(logits, torch.softmax(logits[0], 0), out.scores, out.weights)
        finally:
            self.train(was_training)

    def spec(self) -> dict[str, Any]:
        return {
            "pooling": self.pooling.name,
            "in_dim": self.in_dim,
            "n_classes": self.n_classes,
            **self.pooling.hparams(),
        }

    def registry_spec(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(kind, arch, meta) the registry stores beside the weights (``mil_from_stored`` rebuilds from them)."""
        return "mil", self.spec(), dict(self.meta)


class _Standardised:
    """Chunks standardised lazily; iterating again re-reads the source (no raw chunk is kept alive)."""

    def __init__(self, model: MilClassifier, chunks: Iterable[Tensor]) -> None:
        self.model, self.chunks = model, chunks

    def __iter__(self) -> Iterator[Tensor]:
        return self._gen()

    def _gen(self) -> Iterator[Tensor]:
        it = iter(self.chunks)
        while True:
            try:
                yield self.model._z(next(it))
            except StopIteration:
                return


def build_mil(spec: dict[str, Any], meta: dict[str, Any] | None = None) -> MilClassifier:
    """Rebuild a classifier from ``MilClassifier.spec()``."""
    spec = dict(spec)
    pooling = create_pooling(spec.pop("pooling"), spec.pop("in_dim"), **spec)
    return MilClassifier(pooling, n_classes=int(spec.get("n_classes", 2)), meta=meta)


def mil_from_stored(stored: StoredModel) -> MilClassifier:
    """The MIL classifier of a registered version (``histcode.registry.load_model``), in eval mode."""
    return stored.load_into(build_mil(stored.arch, meta=stored.meta), "mil")  # type: ignore[return-value]


def save_mil(model: MilClassifier, out_dir: str | Path) -> Path:
    """Write ``out_dir/model.pt`` and ``out_dir/model.json`` atomically; return the ``.pt`` path."""
    out_dir = Path(out_dir)
    path = out_dir / MODEL_FILE
    save_torch(path, {"spec": model.spec(), "meta": model.meta, "state_dict": model.state_dict()})
    write_json(out_dir / "model.json", {"spec": model.spec(), "meta": model.meta})
    return path


def load_mil(dir_or_uri: str | Path) -> MilClassifier:
    """Load a MIL classifier from a model dir, its ``model.pt``, ``data/models/mil`` (primary pooling) or
    a registry URI ``models:/<name>@<alias>`` / ``models:/<name>/<version>``. Returned in eval mode."""
    from histcode.registry.models import load_model_uri, parse_model_uri

    ref = parse_model_uri(dir_or_uri)
    if ref is not None:  # through the registry's verified loader (sha256 checked, no pickle)
        return mil_from_stored(load_model_uri(ref))
    path = Path(dir_or_uri)
    if path.is_dir() and not (path / MODEL_FILE).exists() and (path / INDEX_FILE).exists():
        primary = json.loads((path / INDEX_FILE).read_text())["primary"]
        path = path / primary
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no MIL model here; run `dvc repro train_mil` or pass a models:/ URI"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # tensors + plain types only
    model = build_mil(ckpt["spec"], meta=ckpt.get("meta"))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()

