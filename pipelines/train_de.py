"""DVC stage ``train_de``: per-gene DE models from top/bottom attention tiles (params section ``de``)."""

from __future__ import annotations

import argparse
import logging

from histcode.genes.stage import run_train_de


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, de)")
    parser.add_argument("--cohort", default=None, help="cohort to train on (default base.train_cohort)")
    parser.add_argument("--no-register", action="store_true", help="do not register the model in MLflow")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    result = run_train_de(args.params, cohort=args.cohort, register=not args.no_register)
    logging.info("train_de: %s", {k: round(v, 4) for k, v in result.metrics.items()})


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
