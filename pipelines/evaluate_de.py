"""DVC stage ``evaluate_de``: DE statistics vs random baseline, plots, enrichment (params ``evaluate_de``)."""

from __future__ import annotations

import argparse
import logging

from histcode.console import one_line_errors, setup_logging, summary_line
from histcode.evaluation.de_stage import run_evaluate_de

log = logging.getLogger("histcode.pipelines.evaluate_de")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, evaluate_de)")
    parser.add_argument("--cohort", default=None, help="cohort to evaluate (default base.train_cohort)")
    args = parser.parse_args(argv)
    setup_logging()
    result = run_evaluate_de(args.params, cohort=args.cohort)
    log.info("%s", summary_line("evaluate_de", result.metrics, "de"))


if __name__ == "__main__":
    with one_line_errors("evaluate_de"):
        main()
