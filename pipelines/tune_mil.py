"""DVC stage ``tune_mil``: Optuna sweep of the ``mil`` section → reports/tune/mil_best.yaml + metrics."""

from __future__ import annotations

import argparse
import logging

from histcode.tuning.stage import run_tune_mil


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    result = run_tune_mil(args.params)
    s = result.summary
    print(f"tune_mil: best {s.objective} {s.best_value:.4f} (trial {s.best_trial}) → {result.best_path}")
    print(f"apply with:\n  {result.command}")


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
