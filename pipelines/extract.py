"""DVC stage ``extract``: one cohort's tiles → features .h5 per slide per encoder (sections ``base``, ``extract``).

Single process: ``python pipelines/extract.py --cohort NAME``; sharded: ``torchrun --nproc_per_node N
pipelines/extract.py --cohort NAME``. Rerunning skips slides already extracted.
"""

from __future__ import annotations

import argparse
import logging

from histcode.console import one_line_errors, setup_logging, summary_line
from histcode.features.stage import run_extract

log = logging.getLogger("histcode.pipelines.extract")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, extract)")
    parser.add_argument("--cohort", required=True, help="cohort name under base.cohorts")
    parser.add_argument("--encoder", action="append", default=None, help="encoder name (repeatable; default "
                        "extract.encoders)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    metrics = run_extract(args.params, cohort=args.cohort, encoders=args.encoder,
                          progress=False if args.no_progress else None)
    log.info("%s", summary_line(f"extract {args.cohort}", metrics, "extract"))


if __name__ == "__main__":
    with one_line_errors("extract"):
        main()
