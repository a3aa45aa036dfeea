"""The registered model names, defined once: the stages register under them, the gate, lineage and the
external workflow look them up (``histcode promote -m`` accepts exactly these)."""

from __future__ import annotations

ENCODER = "histcode-encoder"  # the self-supervised tile encoder (pretrain)
MIL = "histcode-mil"  # the tumour-vs-normal MIL classifier on that encoder's features (train_mil)
DE = "histcode-de"  # the per-gene differential-expression model (train_de)
MODEL_NAMES = (ENCODER, MIL, DE)
