"""DVC stage `synth`: params `synth` section → histcode.synth.generate → data/synthetic (synth.out_dir)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from histcode.synth import SynthConfig, generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=None, help="override synth.out_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = SynthConfig.from_params(args.params)
    generate(cfg, args.out or cfg.out_dir)


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
