"""The registered model names are defined once (histcode.registry.names) and everything that keys on them
agrees: the gate's default thresholds, params.yaml's promote.thresholds and the promote command."""

from __future__ import annotations

from pathlib import Path

import yaml

from histcode.registry.gate import GateConfig
from histcode.registry.names import DE, ENCODER, MIL, MODEL_NAMES

ROOT = Path(__file__).resolve().parents[2]


def test_names_are_the_public_ones() -> None:
    assert MODEL_NAMES == ("histcode-encoder", "histcode-mil", "histcode-de") == (ENCODER, MIL, DE)


def test_gate_and_params_thresholds_cover_every_registered_model() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(params["promote"]["thresholds"]) == set(MODEL_NAMES)
    assert set(GateConfig().thresholds) == set(MODEL_NAMES)
