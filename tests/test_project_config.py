"""Cross-section defaults are resolved once (``histcode.config.ProjectConfig``): change the upstream key and
every consumer follows; the DVC stages that follow a key depend on it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from histcode.config import (
    DEFAULT_LOG2_THRESHOLD,
    DEFAULT_POOLING,
    ConfigError,
    Params,
    ProjectConfig,
    base,
    load_params,
    section,
)

ROOT = Path(__file__).resolve().parents[1]
REAL = load_params(ROOT / "params.yaml")


def _params(tmp_path: Path, **overrides: dict) -> Params:
    """The real params.yaml with data/reports under ``tmp_path`` and ``section: {key: value}`` overrides."""
    data = copy.deepcopy(dict(REAL))
    data["base"] = {**data["base"], "data_dir": str(tmp_path / "data"), "reports_dir": str(tmp_path / "reports")}
    for name, keys in overrides.items():
        data[name] = {**(data.get(name) or {}), **keys}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_params(path)


def test_real_params_resolve_to_the_upstream_values() -> None:
    p = ProjectConfig.load(ROOT / "params.yaml")
    pooling, encoders = REAL["mil"]["pooling"], tuple(REAL["extract"]["encoders"])
    assert p.mil_pooling == pooling and p.extract_encoders == encoders
    assert p.require_mil_encoder() == encoders[0]  # mil.encoder: null
    assert p.tune_mil_pooling == pooling  # tune.mil.pooling: null
    assert p.de_attention_model == pooling  # de.attention_model: null
    assert p.heatmap_pooling(None) == pooling and p.heatmap_pooling("mean") == "mean"  # heatmaps.pooling: null
    assert p.comparison_encoders() == list(encoders[1:])
    assert p.de_log2_threshold == REAL["expression"]["log2_threshold"]


def test_every_consumer_follows_the_upstream_keys(tmp_path: Path) -> None:
    from histcode.genes.config import de_config
    from histcode.heatmaps.stage import primary_pooling
    from histcode.mil.config import MilConfig
    from histcode.mil.stage import prepare
    from histcode.paths import Paths
    from histcode.prologue import open_stage
    from histcode.tuning.mil_objective import load_mil_data

    params = _params(tmp_path, mil={"pooling": "gated_attention"}, extract={"encoders": ["random", "adco"]})
    paths, cohort = Paths.from_base(base(params)), base(params).train_cohort
    project = ProjectConfig.load(params)
    assert (project.tune_mil_pooling, project.de_attention_model) == ("gated_attention", "gated_attention")
    assert project.comparison_encoders() == ["adco"]
    assert de_config(params).attention_model == "gated_attention"
    assert primary_pooling(params, paths) == "gated_attention"
    paths.models("mil").mkdir(parents=True)
    (paths.models("mil") / "mil.json").write_text(json.dumps({"primary": "abmil"}))
    assert primary_pooling(params, paths) == "abmil"  # the trained model's primary comes before mil.pooling
    # train_mil and the MIL tuner look for the features of extract.encoders[0]
    paths.manifests(cohort).mkdir(parents=True)
    pd.DataFrame({"slide_id": ["s1"], "patient_id": ["p1"], "label": [1]}).to_csv(paths.slides_csv(cohort))
    wanted = str(paths.features(cohort, "random"))
    with pytest.raises(FileNotFoundError, match=re.escape(wanted)):
        prepare(open_stage("train_mil", params, MilConfig, "mil"))
    with pytest.raises(FileNotFoundError, match=re.escape(wanted)):
        load_mil_data(params, base(params), section(MilConfig, "mil", params))


def test_explicit_keys_win_and_missing_sections_fall_back(tmp_path: Path) -> None:
    from histcode.genes.config import de_config
    from histcode.heatmaps.stage import primary_pooling
    from histcode.paths import Paths

    params = _params(tmp_path, mil={"pooling": "gated_attention", "encoder": "adco"}, heatmaps={"pooling": "max"},
                     de={"attention_model": "mean"}, tune={"mil": {**REAL["tune"]["mil"], "pooling": "abmil"}})
    p = ProjectConfig.load(params)
    assert (p.require_mil_encoder(), p.tune_mil_pooling, p.de_attention_model) == ("adco", "abmil", "mean")
    assert de_config(params).attention_model == "mean"
    assert primary_pooling(params, Paths.from_base(base(params))) == "max"
    bare = ProjectConfig.load({"base": {}})
    assert (bare.mil_pooling, bare.de_attention_model, bare.de_log2_threshold) == (
        DEFAULT_POOLING, DEFAULT_POOLING, DEFAULT_LOG2_THRESHOLD)
    with pytest.raises(ConfigError, match=r"set mil\.encoder or extract\.encoders"):
        bare.require_mil_encoder()


def test_owners_default_to_the_declared_values() -> None:
    from histcode.expression.config import ExpressionConfig
    from histcode.genes.config import DEConfig
    from histcode.genes.run import load_de_data
    from histcode.mil.config import MilConfig

    assert MilConfig().pooling == DEFAULT_POOLING and ExpressionConfig().log2_threshold == DEFAULT_LOG2_THRESHOLD
    with pytest.raises(ConfigError, match=r"de\.attention_model: null"):  # an unresolved section is refused
        load_de_data(DEConfig(), base({"base": {}}))


def test_wrong_type_names_file_and_key(tmp_path: Path) -> None:
    params = _params(tmp_path, extract={"encoders": "adco"})
    with pytest.raises(ConfigError, match=r"params.yaml:extract.encoders: expected a list"):
        ProjectConfig.load(params)


# stage -> the upstream params keys it follows through ProjectConfig (so DVC reruns it when they change)
FOLLOWS = {
    "train_mil": ["extract.encoders"],
    "tune_mil": ["extract.encoders", "mil"],
    "heatmaps": ["mil.pooling"],
    "train_de": ["mil.pooling", "expression.log2_threshold"],
}


@pytest.mark.parametrize(("stage", "keys"), sorted(FOLLOWS.items()))
def test_dvc_stages_depend_on_the_keys_they_follow(stage: str, keys: list[str]) -> None:
    listed = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["params"]
    for key in keys:
        assert any(key == k or key.startswith(f"{k}.") for k in listed), f"dvc.yaml {stage}: params lack {key}"
