"""DVC stage ``extract``: one cohort's tiles → features .h5 per slide per encoder (sections ``base``, ``extract``).

Single process: ``python pipelines/extract.py --cohort NAME``; sharded: ``torchrun --nproc_per_node N
pipelines/extract.py --cohort NAME``. Rerunning skips slides already extracted.
"""

from __future__ import annotations

import argparse
import logging

from histcode.features.stage import run_extract


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, extract)")
    parser.add_argument("--cohort", required=True, help="cohort name under base.cohorts")
    parser.add_argument("--encoder", action="append", default=None, help="encoder name (repeatable; default "
                        "extract.encoders)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    metrics = run_extract(args.params, cohort=args.cohort, encoders=args.encoder,
                          progress=False if args.no_progress else None)
    logging.info("extract %s: %s", args.cohort, metrics)


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
