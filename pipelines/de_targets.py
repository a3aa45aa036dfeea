"""DVC stage ``de_targets``: rnaseq.csv → matched pairs, driver panel, fold-change targets (``expression``).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/de_targets.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("de_targets")
