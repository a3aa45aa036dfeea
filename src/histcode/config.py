"""Typed configuration read from ``params.yaml``.

Every stage reads one section of ``params.yaml`` into a frozen dataclass defined next to the code that
uses it (e.g. ``histcode.slides.config.TileConfig``). Unknown keys and wrong types fail loudly with the
file and key named, so a typo in params never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from histcode.errors import HistcodeError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(HistcodeError, ValueError):
    """A params file is missing a section/key or holds a value of the wrong type."""


class Params(dict):  # type: ignore[type-arg]
    """The loaded params mapping, remembering its file so every config error can name it."""

    path: Path | None = None


yaml.SafeDumper.add_representer(Params, yaml.SafeDumper.represent_dict)  # dumps like the plain mapping it is


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read a params YAML file into a dict (raises ``ConfigError`` naming the file)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found; run from the project root or pass --params.")
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections.")
    out = Params(data)
    out.path = path
    return out


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} matches none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return build(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {value!r}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{where}: expected a path string, got {value!r}")
        return Path(value)
    if isinstance(tp, type):
        if tp is int and isinstance(value, bool):
            raise ConfigError(f"{where}: expected int, got bool {value!r}")
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def build(cls: type[T], values: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {sorted(unknown)}; valid: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in values:
            kwargs[name] = _coerce(values[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required key missing")
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a __post_init__ check: name the file as the type checks do
        file = where.split(":", 1)[0] if ":" in where else ""
        if file and not str(exc).startswith(file):
            raise ConfigError(f"{file}: {exc}") from None
        raise


def section(cls: type[T], name: str, params: dict[str, Any] | str | Path = DEFAULT_PARAMS) -> T:
    """Read section ``name`` of a params file (or an already-loaded dict) into dataclass ``cls``."""
    data = params if isinstance(params, dict) else load_params(params)
    path = getattr(data, "path", None)
    where = f"{path}:{name}" if path is not None else name
    if name not in data:
        raise ConfigError(f"{where}: section missing from params")
    return build(cls, data[name] or {}, where)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Flatten a config dataclass into plain types (for MLflow params and JSON)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


@dataclasses.dataclass(frozen=True)
class CohortConfig:
    """One cohort as laid out in DESIGN §3.

    kind: ``gdc`` (GDC slide sample sheet), ``barcode`` (TCGA barcodes in file names, no sheet) or
    ``cptac`` (CSV manifest ``slide_id,file_name,patient_id,label``).
    """

    kind: typing.Literal["gdc", "barcode", "cptac"]
    source_dir: Path
    slide_dir: Path
    slide_sheet: Path | None = None
    rna_dir: Path | None = None
    rna_sheet: Path | None = None
    default_mpp: float | None = None
    role: typing.Literal["train", "external"] = "train"
    synthetic: bool = False


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Shared settings: seed, cohorts, where data and reports live."""

    seed: int = 1337
    data_dir: Path = Path("data")
    reports_dir: Path = Path("reports")
    train_cohort: str = "tcga_synth"
    cohorts: dict[str, CohortConfig] = dataclasses.field(default_factory=dict)
    # names of the synthetic-cohort generator runs DVC creates stages for (`synth@demo`); empty for real data
    synth_runs: list[str] = dataclasses.field(default_factory=list)

    def cohort(self, name: str) -> CohortConfig:
        if name not in self.cohorts:
            raise ConfigError(f"base.cohorts: unknown cohort {name!r}; configured: {sorted(self.cohorts)}")
        return self.cohorts[name]


def base(params: dict[str, Any] | str | Path = DEFAULT_PARAMS) -> BaseConfig:
    """The ``base`` section."""
    return section(BaseConfig, "base", params)
