"""DVC stage ``de_targets``: rnaseq.csv → matched pairs, driver panel, fold-change targets (section ``expression``)."""

from __future__ import annotations

import argparse
import logging
import sys

from histcode.cohort.tables import IngestError
from histcode.cohort.validation import ValidationError
from histcode.config import ConfigError
from histcode.expression.build import TargetsError
from histcode.expression.panel import PanelError
from histcode.expression.readers import ExpressionFileError
from histcode.expression.stage import run_de_targets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, expression)")
    parser.add_argument("--cohort", default=None, help="cohort (default base.train_cohort)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        result = run_de_targets(args.params, cohort=args.cohort)
    except (ValidationError, IngestError, ConfigError, TargetsError, PanelError, ExpressionFileError) as exc:
        logging.error("%s", exc)
        sys.exit(1)
    logging.info("de_targets: %s", result.metrics)


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
