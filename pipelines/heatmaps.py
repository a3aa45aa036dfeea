"""DVC stage ``heatmaps``: attention heatmaps for configured slides (+ attention vs truth on synthetic data)."""

from __future__ import annotations

import argparse
import logging

from histcode.heatmaps.stage import run_heatmaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    metrics = run_heatmaps(args.params, progress=not args.no_progress)
    logging.info("heatmaps: %s", {k: v for k, v in metrics.items() if "mean_" in k or k.startswith("n_")})


if __name__ == "__main__":
    from histcode.errors import run

    run(main)
