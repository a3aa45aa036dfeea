"""DVC stage ``stain_ref``: fit the stain normaliser on train-cohort tiles (``base``, ``stain``)."""

from __future__ import annotations

import argparse
import logging

from histcode.console import one_line_errors, setup_logging, summary_line
from histcode.slides.stage import run_stain_ref

log = logging.getLogger("histcode.pipelines.stain_ref")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, stain)")
    args = parser.parse_args(argv)
    setup_logging()
    log.info("%s", summary_line("stain_ref", run_stain_ref(args.params)))


if __name__ == "__main__":
    with one_line_errors("stain_ref"):
        main()
