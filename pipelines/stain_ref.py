"""DVC stage ``stain_ref``: fit the stain normaliser on train-cohort tiles (``base``, ``stain``).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/stain_ref.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("stain_ref")
