"""DVC stage ``tile``: one cohort's slides → tile coords .h5 + mask PNGs + process_list.csv (``base``, ``tile``)."""

from __future__ import annotations

import argparse
import logging

from histcode.slides.stage import run_tile
from histcode.slides.tiling import parse_shard


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, tile)")
    parser.add_argument("--cohort", required=True, help="cohort name under base.cohorts")
    parser.add_argument("--workers", type=int, default=None, help="slide processes (default tile.workers)")
    parser.add_argument("--shard", default="0/1", help="job-array shard i/n, 0-based")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    metrics = run_tile(args.cohort, args.params, workers=args.workers, shard=parse_shard(args.shard),
                       progress=not args.no_progress)
    logging.info("tile %s: %s", args.cohort, metrics)


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
