"""DVC stage ``evaluate_de``: DE statistics vs random baseline, plots, enrichment (params ``evaluate_de``)."""

from __future__ import annotations

import argparse
import logging

from histcode.evaluation.de_stage import run_evaluate_de


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, evaluate_de)")
    parser.add_argument("--cohort", default=None, help="cohort to evaluate (default base.train_cohort)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    result = run_evaluate_de(args.params, cohort=args.cohort)
    logging.info("evaluate_de: %s", {k: round(v, 4) for k, v in result.metrics.items()})


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
