"""DVC stage ``heatmaps``: attention heatmaps for configured slides (+ attention vs truth on synthetic data)."""

from __future__ import annotations

import argparse
import logging

from histcode.console import one_line_errors, setup_logging, summary_line
from histcode.heatmaps.stage import run_heatmaps

log = logging.getLogger("histcode.pipelines.heatmaps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    setup_logging()
    metrics = run_heatmaps(args.params, progress=not args.no_progress)
    log.info("%s", summary_line("heatmaps", metrics, "mil_attention"))


if __name__ == "__main__":
    with one_line_errors("heatmaps"):
        main()
