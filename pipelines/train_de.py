"""DVC stage ``train_de``: per-gene DE models from top/bottom attention tiles (params section ``de``)."""

from __future__ import annotations

import argparse
import logging

from histcode.console import one_line_errors, setup_logging, summary_line
from histcode.genes.stage import run_train_de

log = logging.getLogger("histcode.pipelines.train_de")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, de)")
    parser.add_argument("--cohort", default=None, help="cohort to train on (default base.train_cohort)")
    parser.add_argument("--no-register", action="store_true", help="do not register the model in MLflow")
    args = parser.parse_args(argv)
    setup_logging()
    result = run_train_de(args.params, cohort=args.cohort, register=not args.no_register)
    log.info("%s", summary_line("train_de", result.metrics))


if __name__ == "__main__":
    with one_line_errors("train_de"):
        main()
