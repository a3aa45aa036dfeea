"""DVC stage ``synth``: params ``synth`` → data/synthetic (synth.out_dir).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/synth.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("synth")
