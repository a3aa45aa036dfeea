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


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built in: ~5x faster, same values


def yaml_load(text: str | typing.IO[str]) -> Any:
    """``yaml.safe_load`` through libyaml when available (every stage command reads params.yaml at start-up)."""
    return yaml.load(text, Loader=_LOADER)


def merge_params(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Layer ``new`` over ``into`` in place: nested sections merge key by key, any other value (lists included)
    replaces the old one (how derived params files and test projects override params.yaml)."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_params(into[key], value)
        else:
            into[key] = value
    return into


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read a params YAML file into a dict (raises ``ConfigError`` naming the file)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found; run from the project root or pass --params.")
    with path.open() as fh:
        data = yaml_load(fh) or {}
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
    preparation: which TCGA slides to keep by how they were prepared (their barcode's section code, or a manifest's
    ``preparation`` column): ``all``, ``frozen`` (TS/BS/MS sections: tumour and normal, the same samples as the
    RNA-seq) or ``ffpe`` (DX diagnostic slides, tumour only); the others are recorded in failures.csv.
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
    preparation: typing.Literal["all", "frozen", "ffpe"] = "all"


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

    def external_cohort(self) -> str:
        """The one cohort with ``role: external``: what ``make eval-cptac`` evaluates when no cohort is named
        (``cptac_synth`` in the demo, ``cptac_brca`` in the paper profile)."""
        names = sorted(n for n, c in self.cohorts.items() if c.role == "external")
        if len(names) != 1:
            raise ConfigError(f"base.cohorts: {len(names)} cohorts have role: external {names}; name the one to "
                              "evaluate (histcode evaluate-external --cohort NAME, make eval-cptac EXTERNAL=NAME)")
        return names[0]


def check_rules(section_name: str, cfg: Any, rules: dict[str, tuple[bool, str]]) -> None:
    """One ``ConfigError`` naming every key of ``section_name`` whose rule fails, with its value and the rule
    (``{key: (holds, "in [0, 1]")}``): a user fixes params.yaml from the message, not from the code."""
    bad = [f"{section_name}.{k} = {getattr(cfg, k)!r} must be {rule}" for k, (ok, rule) in rules.items() if not ok]
    if bad:
        raise ConfigError(f"{'; '.join(bad)}.")


def base(params: dict[str, Any] | str | Path = DEFAULT_PARAMS) -> BaseConfig:
    """The ``base`` section."""
    return section(BaseConfig, "base", params)


# The defaults of the keys other sections follow; their owners' dataclasses (MilConfig.pooling,
# ExpressionConfig.log2_threshold) default to these too, so a section left out resolves like a section written.
DEFAULT_POOLING = "clam_sb"
DEFAULT_LOG2_THRESHOLD = 1.5


def _lookup(params: dict[str, Any], dotted: str, tp: Any, default: Any) -> Any:
    """``params[a][b]...`` checked against ``tp`` (file and key named when wrong); ``default`` if absent or null."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return default
        node = node[part]
    path = getattr(params, "path", None)
    return _coerce(node, tp, f"{path}:{dotted}" if path is not None else dotted)


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    """The params keys whose ``null`` means another section's value, resolved once for every consumer.

    Each stage still reads its own section into its own dataclass (and logs that section as written); the
    keys below are read only through here, so a change of the upstream key moves every consumer with it:

    - ``mil.encoder``: null = ``extract.encoders[0]`` (train_mil, the MIL tuner, external validation);
    - ``heatmaps.pooling``: null = the trained MIL's primary pooling, else ``mil.pooling``;
    - ``tune.mil.pooling``: null = ``mil.pooling``;
    - ``de.attention_model``: null = ``mil.pooling`` (the tumour model whose attention chooses DE tiles);
    - ``expression.log2_threshold``: the binary DE label, also the linear DE models' P(DE) (train_de).
    """

    mil_pooling: str = DEFAULT_POOLING
    extract_encoders: tuple[str, ...] = ()
    mil_encoder: str | None = None  # None: neither mil.encoder nor extract.encoders is set
    heatmaps_pooling: str | None = None  # as written; see heatmap_pooling()
    tune_mil_pooling: str = DEFAULT_POOLING
    de_attention_model: str = DEFAULT_POOLING
    de_log2_threshold: float = DEFAULT_LOG2_THRESHOLD

    @classmethod
    def load(cls, params: dict[str, Any] | str | Path = DEFAULT_PARAMS) -> ProjectConfig:
        """Resolve the cross-section defaults of a params file (or an already-loaded mapping)."""
        data = params if isinstance(params, dict) else load_params(params)
        pooling = _lookup(data, "mil.pooling", str, DEFAULT_POOLING)
        encoders = tuple(_lookup(data, "extract.encoders", list[str], []))
        return cls(
            mil_pooling=pooling,
            extract_encoders=encoders,
            mil_encoder=_lookup(data, "mil.encoder", str, None) or (encoders[0] if encoders else None),
            heatmaps_pooling=_lookup(data, "heatmaps.pooling", str, None) or None,
            tune_mil_pooling=_lookup(data, "tune.mil.pooling", str, None) or pooling,
            de_attention_model=_lookup(data, "de.attention_model", str, None) or pooling,
            de_log2_threshold=_lookup(data, "expression.log2_threshold", float, DEFAULT_LOG2_THRESHOLD),
        )

    def require_mil_encoder(self) -> str:
        """The feature set MIL trains on (``mil.encoder``, null = ``extract.encoders[0]``)."""
        if self.mil_encoder is None:
            raise ConfigError("params: set mil.encoder or extract.encoders (the feature set MIL trains on)")
        return self.mil_encoder

    def comparison_encoders(self) -> list[str]:
        """Every other ``extract.encoders`` feature set: train_mil's encoder comparison on the same folds."""
        return [e for e in self.extract_encoders if e != self.mil_encoder]

    def heatmap_pooling(self, trained_primary: str | None) -> str:
        """``heatmaps.pooling``; null = ``trained_primary`` (data/models/mil/mil.json), else ``mil.pooling``."""
        return self.heatmaps_pooling or trained_primary or self.mil_pooling
