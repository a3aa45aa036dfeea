"""Issue 16 items 1-2: immutable evidence, consistent encoder/MIL champion pairs, safe verified loading."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from histcode import tracking
from histcode.mil.model import mil_from_stored
from histcode.registry import CHAMPION, RegistryError, get_version, load_model, log_and_register
from histcode.registry.evidence import EvidenceExists, attach_evidence, load_evidence
from histcode.registry.gate import GateConfig
from histcode.registry.promotion import promote_pair

CFG = GateConfig(thresholds={"histcode-mil": 0.6, "histcode-encoder": 0.6}, bootstrap=200, seed=0)
X = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")


def _register(name: str, seed: int, noise: float | None, make_evidence, tiny_classifier, **tags: str) -> str:  # type: ignore[no-untyped-def]
    with tracking.start_run("t", run_name=f"{name}-{seed}", stage="test"):
        mv = log_and_register(tiny_classifier(seed), name, input_example=X, tags=tags)
    if noise is not None:
        attach_evidence(name, mv.version, make_evidence(noise, seed=seed), kind="binary")
    return str(mv.version)


def _stored(file_name: str) -> Path:
    """The one copy of ``file_name`` in the test store's artifact root (what an attacker would replace)."""
    (found,) = list(Path.cwd().rglob(file_name))
    return found


def test_evidence_written_once_and_tamper_evident(store: Path, make_evidence, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    v = _register("histcode-encoder", 1, 0.3, make_evidence, tiny_classifier)
    before, _ = load_evidence("histcode-encoder", v)
    with pytest.raises(EvidenceExists, match="written once"):  # a weak later experiment cannot overwrite it
        attach_evidence("histcode-encoder", v, make_evidence(5.0, seed=9), kind="binary")
    after, _ = load_evidence("histcode-encoder", v)
    assert after.equals(before)
    mv = mlflow.MlflowClient().get_model_version("histcode-encoder", v)
    run_art = Path(mlflow.get_run(mv.run_id).info.artifact_uri.removeprefix("file://"))
    (run_art / mv.tags["evidence.artifact"]).write_text("id,label,prob\ns0,1,0.99\n")
    with pytest.raises(RegistryError, match="modified after it was attached"):
        load_evidence("histcode-encoder", v)


def test_tampered_weights_refused_in_one_line(store: Path, make_evidence, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    v = _register("histcode-mil", 3, 0.3, make_evidence, tiny_classifier)
    model = mil_from_stored(load_model("histcode-mil", "challenger"))
    torch.testing.assert_close(model(torch.from_numpy(X)), tiny_classifier(3)(torch.from_numpy(X)))
    # MLflow's own loader (UI, `mlflow models`) still works: pyfunc from code over the state dict
    pyfunc = mlflow.pyfunc.load_model("models:/histcode-mil@challenger")
    np.testing.assert_allclose(pyfunc.predict(X), model(torch.from_numpy(X)).detach().numpy(), rtol=1e-5)
    assert v == "1"
    weights = _stored("weights.safetensors")
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    state = {k: t + 1.0 for k, t in state.items()}
    save_file(state, str(weights))
    with pytest.raises(RegistryError) as err:
        load_model("histcode-mil", "challenger")
    assert "does not match the registered" in str(err.value) and "\n" not in str(err.value)


def test_pickle_payload_never_runs(store: Path, make_evidence, tiny_classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A version without digests (e.g. an old pickled model) is refused before anything is deserialised."""
    with tracking.start_run("t", run_name="legacy", stage="test"):
        info = mlflow.pytorch.log_model(tiny_classifier(1), name="mil", serialization_format="pickle",
                                        registered_model_name="histcode-mil")
    with pytest.raises(RegistryError, match="no sha256 tags"):
        load_model("histcode-mil", version=str(info.registered_model_version))


def test_encoder_and_mil_champions_are_a_consistent_pair(store: Path, make_evidence, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    e1 = _register("histcode-encoder", 1, 0.3, make_evidence, tiny_classifier)
    _register("histcode-mil", 2, 0.3, make_evidence, tiny_classifier, encoder_version=f"histcode-encoder/{e1}")
    d = promote_pair(CFG)
    assert d["histcode-encoder"].promote and d["histcode-mil"].promote
    # a better encoder v2 with no MIL model trained on its features: refused (the pair would break)
    e2 = _register("histcode-encoder", 3, 0.05, make_evidence, tiny_classifier)
    d = promote_pair(CFG)
    assert not d["histcode-encoder"].promote and "no promotable histcode-mil" in d["histcode-encoder"].reason
    assert str(get_version("histcode-encoder", CHAMPION).version) == e1
    # a MIL model on the random baseline's features is never paired with the champion encoder
    _register("histcode-mil", 4, 0.05, make_evidence, tiny_classifier, encoder_version="baseline/random")
    d = promote_pair(CFG)
    assert not d["histcode-mil"].promote and "baseline/random" in d["histcode-mil"].reason
    # a better MIL model on v2 features: both move together
    m3 = _register("histcode-mil", 5, 0.05, make_evidence, tiny_classifier, encoder_version=f"histcode-encoder/{e2}")
    d = promote_pair(CFG)
    assert d["histcode-encoder"].promote and d["histcode-mil"].promote
    assert str(get_version("histcode-encoder", CHAMPION).version) == e2
    assert str(get_version("histcode-mil", CHAMPION).version) == m3


def test_external_evaluation_of_a_mismatched_pair_fails(store: Path, make_evidence, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    from histcode.evaluation.champion_external import evaluate_external

    client = mlflow.MlflowClient(tracking.tracking_uri())
    e1 = _register("histcode-encoder", 1, None, make_evidence, tiny_classifier)
    m1 = _register("histcode-mil", 2, None, make_evidence, tiny_classifier, encoder_version="histcode-encoder/9")
    client.set_registered_model_alias("histcode-encoder", CHAMPION, e1)
    client.set_registered_model_alias("histcode-mil", CHAMPION, m1)
    cohorts = {"ext": {"kind": "cptac", "source_dir": "x", "slide_dir": "x", "role": "external"}}
    Path("params.yaml").write_text(yaml.safe_dump({"base": {"cohorts": cohorts}}))
    with pytest.raises(RegistryError, match="histcode-encoder/9 features but histcode-encoder@champion is v1"):
        evaluate_external("params.yaml", "ext")


def test_stain_reference_travels_with_the_encoder(store: Path, tiny_classifier) -> None:  # type: ignore[no-untyped-def]
    from histcode.registry.models import download_verified

    ref = store / "reference.json"
    ref.write_text('{"method": "macenko"}\n')
    with tracking.start_run("pretrain", run_name="enc", stage="pretrain"):
        mv = log_and_register(tiny_classifier(1), "histcode-encoder", input_example=X,
                              tags={"stain_reference": "extra/stain/reference.json"}, extra_artifacts={"stain": ref})
    files = download_verified("histcode-encoder", mv.version, store / "dl")
    assert files["extra/stain/reference.json"].read_text() == ref.read_text()
    (stored,) = [p for p in Path.cwd().rglob("reference.json")
                 if "encoder_extra" in str(p) and not p.is_relative_to(store / "dl")]  # the store's copy
    stored.write_text('{"method": "reinhard"}\n')
    with pytest.raises(RegistryError, match=r"extra/stain/reference\.json sha256"):
        download_verified("histcode-encoder", mv.version, store / "dl2")


def test_external_features_reused_only_from_the_same_encoder_version(tmp_path: Path) -> None:
    import h5py

    from histcode.config import base
    from histcode.evaluation.champion_external import _reusable_features
    from histcode.paths import Paths

    params = {"base": {"data_dir": str(tmp_path / "data"), "cohorts": {"ext": {
        "kind": "cptac", "source_dir": "x", "slide_dir": "x", "role": "external"}}},
        "extract": {"encoders": ["adco", "random"]}}
    paths = Paths.from_base(base(params))
    for name, uri in (("adco", "models:/histcode-encoder/3"), ("random", "random:resnet18_trunc:seed=1")):
        fdir = paths.features("ext", name)
        fdir.mkdir(parents=True)
        with h5py.File(fdir / "s1.h5", "w") as fh:
            fh.attrs["encoder_uri"] = uri
    assert _reusable_features(params, "ext", paths, "histcode-encoder/3") == paths.features("ext", "adco")
    assert _reusable_features(params, "ext", paths, "histcode-encoder/4") is None
