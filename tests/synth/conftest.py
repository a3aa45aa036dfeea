"""One tiny synthetic cohort per test session (a few seconds), shared by the synth tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from histcode.synth import SynthConfig, generate


@pytest.fixture(scope="session")
def tiny_cfg() -> SynthConfig:
    return SynthConfig.tiny()


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory, tiny_cfg: SynthConfig) -> Path:
    out = tmp_path_factory.mktemp("synth_tiny")
    generate(tiny_cfg, out)
    return out
