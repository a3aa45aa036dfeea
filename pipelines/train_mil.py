"""DVC stage ``train_mil``: patient-level CV of the MIL poolings, final model, registry, attention export (``mil``).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/train_mil.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("train_mil")
