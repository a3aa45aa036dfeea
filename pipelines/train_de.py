"""DVC stage ``train_de``: per-gene DE models from top/bottom attention tiles (``de``).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/train_de.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("train_de")
