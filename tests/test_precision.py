"""``bf16: auto``: autocast only on hardware with native bf16, resolved once and recorded as true/false."""

from __future__ import annotations

import dataclasses

import pytest

from histcode import precision
from histcode.config import ConfigError, section
from histcode.features.config import ExtractConfig
from histcode.ssl.config import PretrainConfig


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch):
    """Pretend this host is a CPU-only machine with the given /proc/cpuinfo flags."""

    def set_flags(*flags: str) -> None:
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"sse2", "avx2", *flags}))
        monkeypatch.setattr(precision, "_nvidia_driver_present", lambda: False)

    return set_flags


def test_auto_follows_the_cpu_flags(cpu) -> None:
    cpu()  # AVX2 only (e.g. AMD EPYC Rome): bf16 would be emulated
    assert precision.resolve_bf16("auto") is False and precision.resolve_bf16("auto", "cpu") is False
    cpu("avx512f", "avx512_bf16")
    assert precision.resolve_bf16("auto") is True
    cpu("amx_bf16", "amx_tile")
    assert precision.resolve_bf16("auto", "cpu") is True
    cpu("avx512f")  # AVX-512 without the bf16 extension: still emulated
    assert precision.resolve_bf16("auto") is False


def test_explicit_settings_win_and_emulated_bf16_warns(cpu, caplog: pytest.LogCaptureFixture) -> None:
    cpu()
    precision._warn_emulated.cache_clear()
    assert precision.resolve_bf16(False) is False
    assert not caplog.records
    with caplog.at_level("WARNING"):
        assert precision.resolve_bf16(True) is True
    assert "emulated" in caplog.text and "bf16: auto" in caplog.text
    with pytest.raises(ValueError, match="auto, true or false"):
        precision.resolve_bf16("yes")


def test_params_accept_auto_true_false_and_name_a_bad_value(tmp_path) -> None:
    assert ExtractConfig().bf16 == "auto" and PretrainConfig().bf16 == "auto"
    for value in ("auto", True, False):
        assert section(ExtractConfig, "extract", {"extract": {"bf16": value}}).bf16 == value
        assert section(PretrainConfig, "pretrain", {"pretrain": {"bf16": value}}).bf16 == value
    with pytest.raises(ConfigError, match=r"extract\.bf16"):
        ExtractConfig(bf16="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"pretrain\.bf16"):
        PretrainConfig(bf16="fast")  # type: ignore[arg-type]


def test_feature_files_record_the_resolved_precision(cpu) -> None:
    """The resume fingerprint of ``auto`` is that of the value it resolves to here, so bf16 features made on
    an AMX machine are re-embedded (not reused) on an AVX2 one, and a params file that said ``true`` before
    keeps its features on a machine where ``auto`` means true."""
    from histcode.features.resume import settings_digest

    cfg = ExtractConfig(stain=False)
    fp32, bf16 = (settings_digest(dataclasses.replace(cfg, bf16=v), 128, None) for v in (False, True))
    assert fp32 != bf16
    cpu()
    assert settings_digest(cfg, 128, None) == fp32
    cpu("amx_bf16")
    assert settings_digest(cfg, 128, None) == bf16


def test_the_stage_log_line_says_which_precision_and_why(cpu) -> None:
    cpu()
    assert precision.describe("auto", False) == (
        "float32 on cpu (bf16: auto; CPU has no AVX512-BF16/AMX: bf16 would be emulated)")
    assert precision.describe("auto", True, "cpu") == "bf16 autocast on cpu (bf16: auto; CPU has AVX512-BF16/AMX)"
    assert precision.describe(True, True, "cpu") == "bf16 autocast on cpu (forced: bf16 true)"
    assert precision.describe("auto", True, "cuda") == "bf16 autocast on cuda (bf16: auto; cuda supports bf16)"
