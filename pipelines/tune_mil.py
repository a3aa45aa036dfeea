"""DVC stage ``tune_mil``: Optuna sweep of the ``mil`` section → reports/tune/mil_best.yaml + metrics.

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/tune_mil.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("tune_mil")
