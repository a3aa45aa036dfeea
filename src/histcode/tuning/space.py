"""Search space → Optuna suggestions → a validated trial config (``dataclasses`` overlay of the section).

The tuned section's own type hints decide how a range is drawn: an ``int`` key uses ``suggest_int``, a
``float`` key ``suggest_float``; any key may list ``choices`` (``suggest_categorical``). The trial config is
rebuilt through ``histcode.config.build`` so a drawn value gets the same type checks as params.yaml.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from histcode.config import ConfigError, build, to_dict
from histcode.tuning.config import ParamSpec

T = TypeVar("T")


def _scalar_type(tp: Any) -> Any:
    """``int`` for ``int`` and ``int | None``; the type itself otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def suggest(trial: Any, space: Mapping[str, ParamSpec], target: type, where: str = "tune") -> dict[str, Any]:
    """Draw one value per key of ``space`` from ``trial`` (an ``optuna.Trial``), typed by ``target``."""
    hints = typing.get_type_hints(target)
    values: dict[str, Any] = {}
    for key, spec in space.items():
        tp = _scalar_type(hints[key])
        if spec.choices is not None:
            values[key] = trial.suggest_categorical(key, list(spec.choices))
        elif tp is int:
            step = int(spec.step) if spec.step is not None else 1
            values[key] = trial.suggest_int(key, int(spec.low), int(spec.high), step=step, log=spec.log)
        elif tp is float:
            values[key] = trial.suggest_float(key, float(spec.low), float(spec.high), log=spec.log, step=spec.step)
        else:
            raise ConfigError(
                f"{where}.space.{key}: {target.__name__}.{key} is {tp}, which has no numeric range; "
                f"give it `choices: [...]`"
            )
    return values


def overlay(cfg: T, *layers: Mapping[str, Any], where: str = "trial") -> T:
    """``cfg`` with each mapping of ``layers`` applied in order, rebuilt with full type/range checks."""
    merged = to_dict(cfg)
    for layer in layers:
        merged.update(layer)
    return build(type(cfg), merged, where)
