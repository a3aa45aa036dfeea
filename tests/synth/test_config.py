"""The `synth` params section: typed, checked, and the tiny preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from histcode.config import ConfigError
from histcode.synth import SynthConfig

ROOT = Path(__file__).resolve().parents[2]


def test_params_yaml_synth_section_reads() -> None:
    cfg = SynthConfig.from_params(ROOT / "params.yaml")
    assert cfg.n_patients >= 24 and cfg.n_40x >= 1 and cfg.n_svs >= 1
    assert (cfg.slide_width // 256) * (cfg.slide_height // 256) >= 150 / cfg.tissue_fill


def test_unknown_key_and_bad_values_fail_loudly() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        SynthConfig.from_params({"synth": {"n_patient": 3}})
    with pytest.raises(ConfigError, match="n_without_normal"):
        SynthConfig.from_params({"synth": {"n_patients": 4, "n_without_normal": 4}})
    with pytest.raises(ConfigError, match="expected int"):
        SynthConfig.from_params({"synth": {"workers": "two"}})


def test_tiny_preset() -> None:
    cfg = SynthConfig.tiny(seed=3)
    assert (cfg.n_patients, cfg.n_patients_external, cfg.n_without_normal, cfg.seed) == (4, 2, 1, 3)
    assert (cfg.slide_width, cfg.slide_height) == (1536, 1280)
