"""DVC stage ``pretrain``: train-cohort tiles → self-supervised encoder (``base``, ``pretrain``); many GPUs: ``torchrun
--nproc_per_node N pipelines/pretrain.py``.

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/pretrain.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("pretrain")
