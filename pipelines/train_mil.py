"""DVC stage ``train_mil``: patient-level CV of MIL poolings, final model, registry, attention export."""

from __future__ import annotations

import argparse
import logging

from histcode.mil.stage import run_train_mil


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    metrics = run_train_mil(args.params)
    primary = metrics["primary_pooling"]
    logging.info("train_mil: %s held-out AUC %.3f", primary, metrics[f"{primary}.auc"])


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
