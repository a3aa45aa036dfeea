"""The ``histcode`` command line: the one face of every pipeline stage and tool.

``COMMANDS`` maps each command to the light ``commands.py`` module that defines it (options, help, printed
result) through ``register(app)``; only the module of the command being run is imported (all of them for
``--help``), and heavy imports (torch, openslide, mlflow) happen inside the commands, so ``histcode --help``
and a stage on complete outputs start fast. ``STAGES`` maps each DVC stage to its command: the stage's entry
script ``pipelines/<stage>.py`` is ``run_stage("<stage>")``, so DVC and a user run the same options and the
same error handling (a user error is one line ``<prog>: error: <message>``, exit status 2).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

app = typer.Typer(help="HistCode: WSI self-supervised learning → tumour diagnosis and driver-gene expression.",
                  no_args_is_help=True, add_completion=False)

# command → the module whose ``register(app)`` defines it (one module may define several commands)
COMMANDS: dict[str, str] = {
    "synth": "histcode.synth.commands",
    "ingest": "histcode.cohort.commands",
    "idc-manifest": "histcode.cohort.commands",
    "tile": "histcode.slides.commands",
    "contact-sheets": "histcode.slides.commands",
    "stain-ref": "histcode.slides.commands",
    "pretrain": "histcode.ssl.commands",
    "extract": "histcode.features.commands",
    "train-mil": "histcode.mil.commands",
    "eval-external": "histcode.evaluation.commands",  # deprecated alias of evaluate-external (hidden)
    "heatmaps": "histcode.heatmaps.commands",
    "heatmap": "histcode.heatmaps.commands",
    "de-targets": "histcode.expression.commands",
    "train-de": "histcode.genes.commands",
    "evaluate-de": "histcode.evaluation.commands",
    "evaluate-external": "histcode.evaluation.commands",
    "promote": "histcode.registry.commands",
    "tune": "histcode.tuning.commands",
    "summary": "histcode.summary",
    "server": "histcode.server",
    "plots-page": "histcode.plots_page",
}

# DVC stage (dvc.yaml, pipelines/<stage>.py) → the command words that run it
STAGES: dict[str, tuple[str, ...]] = {
    "synth": ("synth",),
    "ingest": ("ingest",),
    "tile": ("tile",),
    "stain_ref": ("stain-ref",),
    "pretrain": ("pretrain",),
    "extract": ("extract",),
    "train_mil": ("train-mil",),
    "heatmaps": ("heatmaps",),
    "de_targets": ("de-targets",),
    "train_de": ("train-de",),
    "evaluate_de": ("evaluate-de",),
    "tune_mil": ("tune", "mil"),
}


@app.callback()
def _root() -> None:
    """HistCode: WSI self-supervised learning → tumour diagnosis and driver-gene expression."""


_registered: set[str] = set()


def _command(args: list[str]) -> str | None:
    """The command named in ``args`` (the first word that is not an option), if any."""
    return next((a for a in args if not a.startswith("-")), None)


def register(args: list[str]) -> None:
    """Register the module of the command named in ``args`` (every module when none is: ``--help``)."""
    name = _command(args)
    modules = [COMMANDS[name]] if name in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module in modules:
        if module not in _registered:
            importlib.import_module(module).register(app)
            _registered.add(module)


def main(argv: list[str] | None = None, prog: str = "histcode") -> None:
    """Run ``histcode <argv>``; a user error (``HistcodeError``) ends it with one line naming ``prog``."""
    from histcode.memory_reuse import reuse_freed_memory
    from histcode.process_exit import skip_exit_collection

    reuse_freed_memory()  # first: before torch, numpy or pandas allocate anything large
    try:
        _run(argv, prog)
    finally:
        skip_exit_collection()  # last: the process's first atexit handler, before its final collections


def _run(argv: list[str] | None, prog: str) -> None:
    from histcode.console import one_line_errors, setup_logging

    args = sys.argv[1:] if argv is None else list(argv)
    setup_logging()
    stamp = _stage_stamp(args)
    if stamp is not None and stamp.current():  # a DVC stage command with nothing to do: say so, import nothing
        print(f"{stamp.spec.name}: up to date (same params, dependencies and outputs as its last completed run; "
              f"{stamp.path}); nothing to do")
        return
    if stamp is not None:
        stamp.clear()
    register(args)
    try:
        with one_line_errors(prog):  # bad params / unknown model or alias: one line, no traceback
            _check_tracking_env(args)
            app(args=args, prog_name="histcode")
    except SystemExit as exc:  # typer ends a command with SystemExit(0)
        if stamp is not None and not exc.code:
            stamp.record()
        raise
    if stamp is not None:
        stamp.record()


def _check_tracking_env(args: list[str]) -> None:
    """A ``MLFLOW_TRACKING_URI`` MLflow will not open fails before the command's work, not after it (``server``
    runs its own stores)."""
    import os

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri and _command(args) != "server":
        from histcode.tracking import check_store_uri

        check_store_uri(uri)


def _stage_stamp(args: list[str]) -> Any:
    """The stamp (``histcode.stamps``) when ``args`` run a DVC stage exactly as ``dvc.yaml`` does, else None."""
    for stage, words in STAGES.items():
        if tuple(args[:len(words)]) == words:
            from histcode import stamps

            return stamps.for_command(stage, args[len(words):])
    return None


def run_stage(stage: str, argv: list[str] | None = None) -> None:
    """The DVC stage ``stage`` (``pipelines/<stage>.py``): its command with the script's arguments."""
    main([*STAGES[stage], *(sys.argv[1:] if argv is None else argv)], prog=stage)


if __name__ == "__main__":
    main()
