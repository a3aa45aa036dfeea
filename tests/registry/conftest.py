"""Registry tests run against a throwaway sqlite store in a temp dir (never the project's mlruns/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_mlflow) -> Path:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    fresh_mlflow(tmp_path, monkeypatch)  # a copy of the migrated template store (migrations take seconds)
    return tmp_path


def TinyClassifier(seed: int) -> torch.nn.Module:
    """A small MIL classifier on 4-d tile features (a kind the registry can rebuild), seeded."""
    from histcode.mil.model import build_mil

    torch.manual_seed(seed)
    return build_mil({"pooling": "gated_attention", "in_dim": 4, "hidden": 8, "attn_hidden": 4}).eval()


def evidence(noise: float, seed: int = 0, n: int = 200) -> pd.DataFrame:
    """Binary held-out evidence whose AUC falls as ``noise`` grows (same ids and labels for every call)."""
    rng = np.random.default_rng(123)
    y = rng.integers(0, 2, n)
    signal = y + np.random.default_rng(seed).normal(0, noise, n)
    return pd.DataFrame({"id": [f"s{i}" for i in range(n)], "label": y, "prob": 1 / (1 + np.exp(-signal))})


@pytest.fixture
def make_evidence():  # type: ignore[no-untyped-def]
    return evidence


@pytest.fixture
def tiny_classifier():  # type: ignore[no-untyped-def]
    return TinyClassifier


def _promote_and_load(mv, make_evidence, tiny_classifier, x: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Attach evidence to a registered ``tiny_classifier(7)`` version, promote it through the gate, load the
    champion back and check it computes what was registered (the round trip every store must support)."""
    from histcode.mil.model import mil_from_stored
    from histcode.registry import CHAMPION, get_version, load_model
    from histcode.registry.evidence import attach_evidence
    from histcode.registry.gate import GateConfig
    from histcode.registry.promotion import promote

    attach_evidence("histcode-mil", mv.version, make_evidence(0.3), kind="binary")
    decision = promote("histcode-mil", GateConfig(thresholds={"histcode-mil": 0.7}, bootstrap=100))
    assert decision.promote
    assert str(get_version("histcode-mil", CHAMPION).version) == str(mv.version)
    model = mil_from_stored(load_model("histcode-mil", CHAMPION))
    torch.testing.assert_close(model(torch.from_numpy(x)), tiny_classifier(7)(torch.from_numpy(x)))


@pytest.fixture
def promote_and_load():  # type: ignore[no-untyped-def]
    return _promote_and_load
