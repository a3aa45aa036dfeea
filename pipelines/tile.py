"""DVC stage ``tile``: one cohort's slides → tile coords .h5 + mask PNGs + process_list.csv (``base``, ``tile``).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/tile.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("tile")
