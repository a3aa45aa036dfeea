"""DVC stage ``synth``: params ``synth`` → data/synthetic (synth.out_dir).

The options and their help are the command's (``histcode.cli.STAGES``): ``python pipelines/synth.py --help``.
"""

import sys

try:
    from histcode.cli import run_stage
except ModuleNotFoundError as exc:  # `dvc repro` under a Python without the project: one line, not a traceback
    print(f"error: {__file__}: {exc.name} is not installed for {sys.executable}; activate the project's venv "
          "(`. .venv/bin/activate`) or use `make repro`, then run `dvc repro` again", file=sys.stderr)
    raise SystemExit(2) from None

if __name__ == "__main__":
    run_stage("synth")
