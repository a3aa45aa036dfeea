"""DVC stage ``extract``: one cohort's tiles → features .h5 per slide per encoder (``base``, ``extract``); sharded:
``torchrun --nproc_per_node N pipelines/extract.py --cohort NAME``.

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/extract.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("extract")
