"""DVC stage ``heatmaps``: attention heatmaps for configured slides (+ attention vs truth on synthetic data).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/heatmaps.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("heatmaps")
