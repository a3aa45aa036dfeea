"""DVC stage `synth`: params `synth` section → histcode.synth.generate → data/synthetic (synth.out_dir)."""

from __future__ import annotations

import argparse
from pathlib import Path

from histcode.console import one_line_errors, setup_logging
from histcode.synth import SynthConfig, generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=None, help="override synth.out_dir")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = SynthConfig.from_params(args.params)
    generate(cfg, args.out or cfg.out_dir)


if __name__ == "__main__":
    with one_line_errors("synth"):
        main()
