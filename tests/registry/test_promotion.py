"""Register → attach evidence → promote → load by alias, on a real (sqlite) MLflow registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from histcode import tracking
from histcode.mil.model import mil_from_stored
from histcode.registry import CHALLENGER, CHAMPION, RegistryError, get_version, load_model, log_and_register
from histcode.registry.evidence import attach_evidence
from histcode.registry.gate import GateConfig
from histcode.registry.promotion import promote

CFG = GateConfig(thresholds={"histcode-mil": 0.6}, bootstrap=200, seed=0)
X = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")


def test_register_promote_load(store: Path, make_evidence, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    def _register(seed: int, noise: float) -> str:
        with tracking.start_run("mil", run_name=f"fit-{seed}", stage="train_mil"):
            mv = log_and_register(tiny_classifier(seed), "histcode-mil", input_example=X, metrics={"auc": 0.9})
        attach_evidence("histcode-mil", mv.version, make_evidence(noise, seed=seed), kind="binary")
        return str(mv.version)

    with pytest.raises(RegistryError, match="make promote"):
        load_model("histcode-mil", CHAMPION)
    v1 = _register(1, 1.0)
    mv = get_version("histcode-mil", CHALLENGER)
    assert str(mv.version) == v1 and mv.tags["metric.auc"] == "0.9" and mv.tags["run_id"]
    assert mv.tags["git_commit"]

    first = promote("histcode-mil", CFG)
    assert first.promote and str(get_version("histcode-mil", CHAMPION).version) == v1

    worse = _register(2, 3.0)
    d = promote("histcode-mil", CFG)
    assert not d.promote and str(get_version("histcode-mil", CHAMPION).version) == v1
    assert str(get_version("histcode-mil", CHALLENGER).version) == worse
    assert mlflow.MlflowClient().get_model_version("histcode-mil", worse).tags["gate.decision"] == "refused"
    # the registry page shows the description first: it carries the decision, its reason and the evidence
    refused = mlflow.MlflowClient().get_model_version("histcode-mil", worse).description
    assert refused.splitlines()[0].startswith("Promotion gate: refused (champion unchanged), ")  # the table's line
    assert d.reason in refused and f"compared with champion: version {v1}" in refused
    assert "held-out evidence (binary," in refused and "evidence/histcode-mil-v" in refused
    client = mlflow.MlflowClient()
    client.update_model_version("histcode-mil", worse, description="notes by a user\n\n" + refused)
    promote("histcode-mil", CFG)  # a second decision replaces the gate section and keeps the user's notes
    again = client.get_model_version("histcode-mil", worse).description
    assert again.startswith("notes by a user") and again.count("Promotion gate") == 1
    old_style = "notes by a user\n\n### Promotion gate\n\n**refused** (champion unchanged), earlier"
    client.update_model_version("histcode-mil", worse, description=old_style)  # a section of an older version
    promote("histcode-mil", CFG)
    again = client.get_model_version("histcode-mil", worse).description
    assert again.startswith("notes by a user") and again.count("Promotion gate") == 1 and "###" not in again

    better = _register(3, 0.2)
    d = promote("histcode-mil", CFG)
    assert d.promote and str(get_version("histcode-mil", CHAMPION).version) == better

    rerun = _register(3, 0.2)  # the same model trained again: the same held-out predictions
    d = promote("histcode-mil", CFG)
    assert not d.promote and str(get_version("histcode-mil", CHAMPION).version) == better
    assert d.reason.startswith(f"the same held-out evidence as champion version {better} (sha256 ")
    assert "a rerun of the same model" in client.get_model_version("histcode-mil", rerun).description

    model = mil_from_stored(load_model("histcode-mil", CHAMPION))
    expected = tiny_classifier(3)(torch.from_numpy(X))
    torch.testing.assert_close(model(torch.from_numpy(X)), expected)


def test_registration_prints_no_pyfunc_hints(store: Path, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    """Each registration printed two MLflow hints that do not apply into every `make demo` log: "add type hints
    to ``predict``" (it has one now that MLflow derives no signature from) and "no input example" (the
    signature is given; silenced around the call only)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracking.start_run("mil", run_name="fit-hints", stage="train_mil"):
            log_and_register(tiny_classifier(0), "histcode-mil", input_example=X, metrics={"auc": 0.9})
        warnings.warn("a warning of the caller's own", UserWarning, stacklevel=1)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "Add type hints" in m or "input example was not provided" in m]
    assert "a warning of the caller's own" in messages  # the filter does not outlive the call


def test_promote_before_evidence_names_the_stage_that_attaches_it(store: Path, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    """After `dvc repro pretrain` alone the encoder is registered but not yet judged: `make promote` said "retrain
    it", while what is missing is the first train_mil on its features. The message names the stage per model."""
    with tracking.start_run("mil", run_name="fit-no-evidence", stage="train_mil"):
        log_and_register(tiny_classifier(0), "histcode-mil", input_example=X, metrics={"auc": 0.9})
    with pytest.raises(RegistryError, match=r"histcode-mil v1 has no held-out evidence attached yet: train_mil "
                                            r"attaches its cross-validated predictions.*run `dvc repro`"):
        promote("histcode-mil", CFG)
