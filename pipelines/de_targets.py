"""DVC stage ``de_targets``: rnaseq.csv → matched pairs, driver panel, fold-change targets (section ``expression``)."""

from __future__ import annotations

import argparse
import logging
import sys

from histcode.cohort.tables import IngestError
from histcode.cohort.validation import ValidationError
from histcode.config import ConfigError
from histcode.console import one_line_errors, setup_logging, summary_line
from histcode.expression.build import TargetsError
from histcode.expression.panel import PanelError
from histcode.expression.readers import ExpressionFileError
from histcode.expression.stage import run_de_targets

log = logging.getLogger("histcode.pipelines.de_targets")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, expression)")
    parser.add_argument("--cohort", default=None, help="cohort (default base.train_cohort)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        result = run_de_targets(args.params, cohort=args.cohort)
    except (ValidationError, IngestError, ConfigError, TargetsError, PanelError, ExpressionFileError) as exc:
        log.error("%s", exc)
        sys.exit(1)
    log.info("%s", summary_line("de_targets", result.metrics, "de_targets"))


if __name__ == "__main__":
    with one_line_errors("de_targets"):
        main()
