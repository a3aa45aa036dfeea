"""The ``tune`` section: space validation, typed suggestions, YAML scalars that survive both parsers."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from histcode.config import ConfigError, section
from histcode.mil.config import MilConfig
from histcode.tuning.best import dvc_set_command, yaml_scalar
from histcode.tuning.config import ParamSpec, TuneConfig
from histcode.tuning.space import overlay, suggest

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def tune(mil: dict) -> dict:
    return {"tune": {"mil": mil}}


def test_project_params_have_a_valid_cheap_tune_section() -> None:
    cfg = section(TuneConfig, "tune", PARAMS)
    assert set(cfg.mil.space) >= {"lr", "weight_decay", "dropout", "hidden", "attn_hidden"}
    assert cfg.mil.space["lr"].log and cfg.mil.space["weight_decay"].log
    # cheap by its trial count and budget, not by a clock: a time limit makes the study (and the DVC stage's
    # outputs) depend on how fast the machine is, and a slower one stops a trial short (6 -> 5 trials seen)
    assert cfg.mil.n_trials <= 10 and cfg.mil.timeout_s is None and cfg.de.timeout_s is None
    assert cfg.mil.folds is not None and cfg.mil.folds <= 3 and cfg.mil.fixed["max_epochs"] <= 12
    assert cfg.mil.direction == "maximize" and cfg.de.direction == "maximize"


@pytest.mark.parametrize(
    ("mil", "message"),
    [
        ({"space": {"learning_rate": {"low": 0.1, "high": 1.0}}}, "unknown key(s) ['learning_rate']"),
        ({"space": {"lr": {"low": 0.0, "high": 1.0, "log": True}}}, "log-uniform range needs low > 0"),
        ({"space": {"lr": {"low": 0.1}}}, "needs both low and high"),
        ({"space": {"lr": {"low": 0.1, "high": 1.0}}, "fixed": {"lr": 0.1}}, "both searched and fixed"),
        ({"space": {}}, "space: empty"),
        ({"folds": 0}, "tune.mil.folds: must be >= 1"),
    ],
)
def test_bad_tune_sections_fail_naming_the_key(mil: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        section(TuneConfig, "tune", tune(mil))
    assert message in str(err.value)


def test_suggestions_are_typed_by_the_tuned_section() -> None:
    space = {"lr": ParamSpec(1e-5, 1e-3, log=True), "hidden": ParamSpec(16, 64, step=16),
             "pooling": ParamSpec(choices=["mean", "max"])}
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for _ in range(5):
        values = suggest(study.ask(), space, MilConfig)
        assert isinstance(values["hidden"], int) and values["hidden"] in (16, 32, 48, 64)
        assert isinstance(values["lr"], float) and 1e-5 <= values["lr"] <= 1e-3
        cfg = overlay(MilConfig(), values)
        assert (cfg.hidden, cfg.lr, cfg.pooling) == (values["hidden"], values["lr"], values["pooling"])
    with pytest.raises(ConfigError, match="give it `choices"):
        suggest(study.ask(), {"pooling": ParamSpec(0, 1)}, MilConfig)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e-12, max_value=1e12, allow_nan=False) | st.integers(-5, 5) | st.booleans())
def test_yaml_scalars_read_back_exactly_with_pyyaml(value) -> None:
    back = yaml.safe_load(yaml_scalar(value))
    assert back == value and type(back) is type(value)


def test_dvc_command_line() -> None:
    cmd = dvc_set_command("mil", {"lr": 1e-05, "hidden": 128, "pooling": "mean", "dropout": 0.25})
    assert cmd == "dvc exp run -S mil.lr=1.0e-05 -S mil.hidden=128 -S mil.pooling=mean -S mil.dropout=0.25"
