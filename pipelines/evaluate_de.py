"""DVC stage ``evaluate_de``: DE statistics vs random baseline, plots, enrichment (``evaluate_de``).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/evaluate_de.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("evaluate_de")
