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
    with pytest.raises(ConfigError, match=r"external_profile.*site_c"):
        SynthConfig.from_params({"synth": {"external_profile": "cptak"}})


def test_site_profiles_differ_where_sites_differ() -> None:
    """The external sites are shifted in stain, scanner and case mix against the training site."""
    from histcode.synth.sites import SITES

    train = SITES["tcga"]
    for name in ("cptac", "site_c"):
        ext = SITES[name]
        assert ext.h_ref != train.h_ref and ext.e_ref != train.e_ref
        assert ext.white_point != train.white_point and ext.blur_um != train.blur_um
        assert ext.jpeg_quality[1] < train.jpeg_quality[1] and any(ext.z_shift)
        assert ext.architecture != train.architecture
    for site in SITES.values():
        assert abs(sum(site.architecture.values()) - 1) < 1e-9


def test_tiny_preset() -> None:
    cfg = SynthConfig.tiny(seed=3)
    assert (cfg.n_patients, cfg.n_patients_external, cfg.n_without_normal, cfg.seed) == (4, 2, 1, 3)
    assert (cfg.slide_width, cfg.slide_height) == (1536, 1280)
