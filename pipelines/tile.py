"""DVC stage ``tile``: one cohort's slides → tile coords .h5 + mask PNGs + process_list.csv (``base``, ``tile``)."""

from __future__ import annotations

import argparse
import logging

from histcode.console import one_line_errors, setup_logging, summary_line
from histcode.slides.stage import run_tile
from histcode.slides.tiling import parse_shard

log = logging.getLogger("histcode.pipelines.tile")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, tile)")
    parser.add_argument("--cohort", required=True, help="cohort name under base.cohorts")
    parser.add_argument("--workers", type=int, default=None, help="slide processes (default tile.workers)")
    parser.add_argument("--shard", default="0/1", help="job-array shard i/n, 0-based")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    setup_logging()
    metrics = run_tile(args.cohort, args.params, workers=args.workers, shard=parse_shard(args.shard),
                       progress=not args.no_progress)
    log.info("%s", summary_line(f"tile {args.cohort}", metrics, "tile"))


if __name__ == "__main__":
    with one_line_errors("tile"):
        main()
