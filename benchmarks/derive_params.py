"""Write a study's params: a copy of SRC with OVERRIDES (YAML text) and optional YAML files deep-merged in,
so benchmark worlds (ssl_world.sh, attention_world.sh) state only what they change.

    python benchmarks/derive_params.py SRC OUT 'base: {seed: 7}' [EXTRA.yaml ...]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merge key by key; any other value (lists included) replaces the old one."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        sys.exit(__doc__)
    src, out, overrides, *extra = argv
    params = yaml.safe_load(Path(src).read_text()) or {}
    merge(params, yaml.safe_load(overrides) or {})
    for path in extra:
        if path:
            merge(params, yaml.safe_load(Path(path).read_text()) or {})
    Path(out).write_text(yaml.safe_dump(params, sort_keys=False))


if __name__ == "__main__":
    main(sys.argv[1:])
