"""Versions trained in a `dvc exp run --temp`/`--queue` copy do not take @challenger (the last queued experiment
to finish used to), and `histcode promote --candidate exp-<name>` puts one through the gate on purpose."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from histcode import cli, tracking
from histcode.registry import CHALLENGER, CHAMPION, get_version, log_and_register
from histcode.registry.evidence import attach_evidence

X = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")


def _register(tiny_classifier, seed: int) -> str:  # type: ignore[no-untyped-def]
    with tracking.start_run("mil", run_name=f"fit-{seed}", stage="train_mil"):
        return str(log_and_register(tiny_classifier(seed), "histcode-mil", input_example=X).version)


def _in_experiment(monkeypatch: pytest.MonkeyPatch, name: str, project: Path) -> None:
    """What DVC sets for a stage of experiment ``name``: its name, and DVC_ROOT = the project it belongs to."""
    monkeypatch.setenv("DVC_EXP_NAME", name)
    monkeypatch.setenv("DVC_ROOT", str(project))


def test_experiment_copy_registers_under_its_own_alias(store: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    workspace = _register(tiny_classifier, 1)
    copy = store / ".dvc" / "tmp" / "exps" / "standalone" / "tmpabc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)  # stages of a temp/queued experiment run in a copy; DVC_ROOT names the project
    _in_experiment(monkeypatch, "sooth-love", store)
    assert tracking.experiment_copy() == "sooth-love"
    queued = _register(tiny_classifier, 2)
    assert str(get_version("histcode-mil", CHALLENGER).version) == workspace
    mv = get_version("histcode-mil", "exp-sooth-love")
    assert str(mv.version) == queued and mv.tags["dvc.exp_name"] == "sooth-love"

    monkeypatch.chdir(store)  # a workspace `dvc exp run`: its outputs are the project's own
    _in_experiment(monkeypatch, "pious-pats", store)
    assert tracking.experiment_copy() is None
    here = _register(tiny_classifier, 3)
    assert str(get_version("histcode-mil", CHALLENGER).version) == here


def test_promote_candidate_gates_an_experiment_version(store: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tiny_classifier, make_evidence) -> None:  # type: ignore[no-untyped-def]
    (store / "params.yaml").write_text("promote:\n  thresholds: {histcode-mil: 0.6}\n  bootstrap: 100\n")
    workspace = _register(tiny_classifier, 1)
    attach_evidence("histcode-mil", workspace, make_evidence(3.0, seed=1), kind="binary")  # a weak model
    copy = store / "copy"
    copy.mkdir()
    monkeypatch.chdir(copy)
    _in_experiment(monkeypatch, "forte-hoot", store)
    queued = _register(tiny_classifier, 2)
    attach_evidence("histcode-mil", queued, make_evidence(0.3, seed=2), kind="binary")  # a strong one
    monkeypatch.chdir(store)
    for key in ("DVC_EXP_NAME", "DVC_ROOT"):
        monkeypatch.delenv(key)

    cli.register(["promote"])
    runner = CliRunner()
    unknown = runner.invoke(cli.app, ["promote", "--model", "histcode-mil", "--candidate", "exp-nope"])
    assert unknown.exit_code == 2 and "no registered model has a version @exp-nope" in unknown.output
    dry = runner.invoke(cli.app, ["promote", "--model", "histcode-mil", "--candidate", "exp-forte-hoot", "--dry-run"])
    assert dry.exit_code == 2 and str(get_version("histcode-mil", CHALLENGER).version) == workspace
    done = runner.invoke(cli.app, ["promote", "--model", "histcode-mil", "--candidate", "exp-forte-hoot"])
    assert done.exit_code == 0, done.output
    assert "PROMOTED to @champion" in done.output
    assert str(get_version("histcode-mil", CHAMPION).version) == queued
    assert mlflow.MlflowClient().get_model_version("histcode-mil", queued).tags["gate.decision"] == "promoted"
