"""Write a study's params: a copy of SRC with OVERRIDES (YAML text) and optional YAML files deep-merged in,
so benchmark worlds (ssl_world.sh, attention_world.sh) state only what they change.

    python benchmarks/derive_params.py SRC OUT 'base: {seed: 7}' [EXTRA.yaml ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from histcode.config import merge_params


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        sys.exit(__doc__)
    src, out, overrides, *extra = argv
    params = yaml.safe_load(Path(src).read_text()) or {}
    merge_params(params, yaml.safe_load(overrides) or {})
    for path in extra:
        if path:
            merge_params(params, yaml.safe_load(Path(path).read_text()) or {})
    Path(out).write_text(yaml.safe_dump(params, sort_keys=False))


if __name__ == "__main__":
    main(sys.argv[1:])
