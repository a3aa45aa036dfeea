"""DVC stage ``ingest``: one cohort's inputs → validated manifests (params sections ``base``, ``ingest``)."""

from __future__ import annotations

import argparse
import logging
import sys

from histcode.cohort.stage import run_ingest
from histcode.cohort.tables import IngestError
from histcode.cohort.validation import ValidationError
from histcode.config import ConfigError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, ingest)")
    parser.add_argument("--cohort", required=True, help="cohort name under base.cohorts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        result = run_ingest(args.cohort, args.params)
    except (ValidationError, IngestError, ConfigError) as exc:  # readable report, no traceback
        logging.error("%s", exc)
        sys.exit(1)
    logging.info("ingest %s: %s", args.cohort, result.counts)


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
