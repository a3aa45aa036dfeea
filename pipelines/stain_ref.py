"""DVC stage ``stain_ref``: fit the stain normaliser on train-cohort tiles (``base``, ``stain``)."""

from __future__ import annotations

import argparse
import logging

from histcode.slides.stage import run_stain_ref


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, stain)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.info("stain_ref: %s", run_stain_ref(args.params))


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
