"""DVC stage ``ingest``: one cohort's inputs → validated manifests (params ``base``, ``ingest``).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/ingest.py --help``.
"""

from histcode.cli import run_stage

if __name__ == "__main__":
    run_stage("ingest")
