"""The best trial written back as a params file, plus the ``dvc exp run -S ...`` line that applies it.

``reports/tune/<family>_best.yaml`` holds one mapping, ``<family>:``, with the FULL section: the current
params section overlaid with the best values, so it can be merged into params.yaml as is (or passed to
``histcode.config.section``). Floats are formatted so that both PyYAML (YAML 1.1, what histcode reads)
and DVC's YAML 1.2 parser read them back as floats (``1.0e-05``, never ``1e-05``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from histcode.atomic import write_text
from histcode.config import to_dict
from histcode.tuning.space import overlay


def yaml_scalar(value: Any) -> str:
    """A scalar as a YAML 1.1 and 1.2 parser both read it back (``True`` → ``true``, 1e-05 → ``1.0e-05``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        if text in ("inf", "-inf", "nan"):
            return {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}[text]
        if "e" in text:
            mantissa, exponent = text.split("e")
            if "." not in mantissa:
                mantissa += ".0"
            if exponent[0] not in "+-":
                exponent = "+" + exponent
            return f"{mantissa}e{exponent}"
        return text
    return str(value)


def dvc_set_command(family: str, values: Mapping[str, Any]) -> str:
    """``dvc exp run -S <family>.<key>=<value> ...`` for the tuned keys (shell-quoted)."""
    parts = ["dvc", "exp", "run"]
    for key, value in values.items():
        parts += ["-S", shlex.quote(f"{family}.{key}={yaml_scalar(value)}")]
    return " ".join(parts)


def best_section(current: Any, best_params: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The full section: ``current`` (a config dataclass) overlaid with ``best_params``, type-checked."""
    return to_dict(overlay(current, best_params, where=f"{family} (best trial)"))


def write_best(
    path: Path, family: str, section: Mapping[str, Any], command: str, *, header: str
) -> Path:
    """Write ``{family: section}`` with a comment header naming the study and the apply command."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += ["# apply to the pipeline (then `dvc exp show` compares it):", f"#   {command}", ""]
    body = yaml.safe_dump({family: dict(section)}, sort_keys=False, default_flow_style=False)
    write_text(path, "\n".join(lines) + body)
    return path
