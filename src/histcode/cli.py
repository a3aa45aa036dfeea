"""The ``histcode`` command line: one sub-command per pipeline step, for interactive use.

Each package contributes its commands through a light ``commands.py`` module exposing
``register(app)``; heavy imports (torch, openslide, mlflow) happen inside the commands, so ``histcode
--help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(help="HistCode: WSI self-supervised learning → tumour diagnosis and driver-gene expression.",
                  no_args_is_help=True, add_completion=False)

COMMAND_MODULES = (
    "histcode.synth.commands",
    "histcode.cohort.commands",
    "histcode.slides.commands",
    "histcode.ssl.commands",
    "histcode.features.commands",
    "histcode.mil.commands",
    "histcode.heatmaps.commands",
    "histcode.expression.commands",
    "histcode.genes.commands",
    "histcode.evaluation.commands",
    "histcode.registry.commands",
    "histcode.tuning.commands",
    "histcode.summary",
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # package not present in this build
                continue
            raise
        module.register(app)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    _register_all()
    from histcode.errors import run

    run(lambda: app(standalone_mode=True))


if __name__ == "__main__":
    main()
