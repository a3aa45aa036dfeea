"""bf16 autocast only where the hardware computes bf16 natively (``bf16: auto``, the default).

On a CPU without AVX512-BF16 or AMX, PyTorch emulates bf16: autocast made the demo encoder's inference 8x and
a training step 14x slower than float32 on an AVX2-only AMD EPYC (``benchmarks/bench_precision.py``), where on
a CPU with AMX it is ~3x faster. ``auto`` turns it on for CUDA GPUs that support bf16 and CPUs whose flags list
native bf16 instructions; ``true``/``false`` force it. Stages resolve the setting once and record the resolved
value (never "auto") in their runs and feature files, so features made in bf16 are never taken for float32 ones.
No torch import unless a GPU driver is present: the stages' "nothing to do" path stays light.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def check_setting(value: object, key: str) -> None:
    """Raise ConfigError unless ``value`` is true, false or "auto" (``key`` names it in params.yaml)."""
    from histcode.config import ConfigError

    if not (isinstance(value, bool) or value == "auto"):
        raise ConfigError(f"{key}: {value!r} must be auto, true or false (auto: bf16 only where the hardware has it)")


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, str] | None:
    """The first processor's fields of /proc/cpuinfo (Linux: "flags", "model name", ...); None where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # end of the first processor's block
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_flags() -> frozenset[str] | None:
    """The CPU feature flags of /proc/cpuinfo; None where it cannot be read."""
    info = cpu_info()
    return None if info is None or "flags" not in info else frozenset(info["flags"].split())


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX); oneDNN's answer where /proc is missing."""
    flags = cpu_flags()
    if flags is not None:
        return any(f in flags for f in CPU_BF16_FLAGS)
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def default_device_type() -> str:
    """The device ``histcode.distributed.init_distributed("auto")`` will pick, importing torch only on a GPU host."""
    if not _nvidia_driver_present():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` computes bf16 natively."""
    if device_type == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    if device_type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_bf16(setting: bool | str, device_type: str | None = None) -> bool:
    """The bf16 autocast flag to use: ``setting`` if true/false, else whether ``device_type`` (None: the default
    device) has native bf16. Forcing bf16 on a CPU that emulates it logs a warning once."""
    if setting == "auto":
        return native_bf16(device_type or default_device_type())
    if not isinstance(setting, bool):
        raise ValueError(f"bf16 must be auto, true or false, got {setting!r}")
    if setting and (device_type or default_device_type()) == "cpu" and not cpu_has_native_bf16():
        _warn_emulated()
    return setting


def describe(setting: bool | str, resolved: bool, device_type: str | None = None) -> str:
    """One log line saying which precision a stage computes in and why (the setting and the hardware)."""
    dev = device_type or default_device_type()
    if setting != "auto":
        return f"{'bf16 autocast' if resolved else 'float32'} on {dev} (forced: bf16 {str(setting).lower()})"
    if dev == "cpu":
        why = "CPU has AVX512-BF16/AMX" if resolved else "CPU has no AVX512-BF16/AMX: bf16 would be emulated"
    else:
        why = f"{dev} {'supports' if resolved else 'lacks'} bf16"
    return f"{'bf16 autocast' if resolved else 'float32'} on {dev} (bf16: auto; {why})"


@lru_cache(maxsize=1)
def _warn_emulated() -> None:
    log.warning("bf16 autocast on a CPU without AVX512-BF16/AMX is emulated and ~10x slower than float32; "
                "set bf16: auto (or false) in params.yaml")
