"""DVC stage ``pretrain``: train-cohort tiles → self-supervised encoder (params sections ``base``, ``pretrain``).

Single process: ``python pipelines/pretrain.py``; many GPUs/nodes: ``torchrun --nproc_per_node N
pipelines/pretrain.py``. The SimCLR baseline: ``--method simclr --out data/models/encoder_simclr``.
"""

from __future__ import annotations

import argparse
import logging

from histcode.console import one_line_errors, setup_logging, summary_line
from histcode.ssl.stage import run_pretrain

log = logging.getLogger("histcode.pipelines.pretrain")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, pretrain)")
    parser.add_argument("--resume", action="store_true",
                        help="require resuming data/checkpoints/pretrain/<method>.pt (error if its config differs)")
    parser.add_argument("--restart", action="store_true", help="ignore the checkpoint and start at epoch 1")
    parser.add_argument("--method", choices=["adco", "simclr"], default=None, help="override pretrain.method")
    parser.add_argument("--out", default=None, help="encoder directory (default data/models/encoder)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    # default: resume the epoch checkpoint (a persisted DVC output) when it belongs to the same config
    resume = False if args.restart else (True if args.resume else "auto")
    result = run_pretrain(args.params, resume=resume, method=args.method, out_dir=args.out,
                          progress=False if args.no_progress else None)
    if result.metrics:
        log.info("%s", summary_line("pretrain", result.metrics, "pretrain"))


if __name__ == "__main__":
    with one_line_errors("pretrain"):
        main()
