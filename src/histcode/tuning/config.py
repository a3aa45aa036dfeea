"""The ``tune`` section of ``params.yaml``: one Optuna study per model family (``tune.mil``, ``tune.de``).

A search space maps keys of the tuned section (``mil`` → ``MilConfig``, ``de`` → ``DEConfig``) to a
``ParamSpec``. Whether a range is searched as int or float comes from that key's type in the target
config, so ``hidden: {low: 64, high: 256}`` draws integers and ``lr: {low: 1.0e-5, high: 1.0e-3, log:
true}`` floats. Keys in ``fixed`` override the section for the trials only (a cheaper budget, e.g. fewer
epochs); they are never written to the best-params file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from histcode.config import ConfigError, build
from histcode.genes.config import DEConfig
from histcode.mil.config import MilConfig


@dataclass(frozen=True)
class ParamSpec:
    """One searched key: a range ``[low, high]`` (optionally ``log`` or with a ``step``) or ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def check(self, where: str) -> None:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ConfigError(f"{where}: give either choices or low/high, not both")
            if not self.choices:
                raise ConfigError(f"{where}: choices is empty; list at least one value")
            bad = [c for c in self.choices if c is not None and not isinstance(c, bool | int | float | str)]
            if bad:
                raise ConfigError(f"{where}: choices must be numbers, strings, booleans or null, got {bad}")
            return
        if self.low is None or self.high is None:
            raise ConfigError(f"{where}: a range needs both low and high (or give choices)")
        if self.low > self.high:
            raise ConfigError(f"{where}: low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log-uniform range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ConfigError(f"{where}: step and log cannot be combined (Optuna forbids it)")
        if self.step is not None and self.step <= 0:
            raise ConfigError(f"{where}: step must be > 0, got {self.step}")


def _mil_space() -> dict[str, ParamSpec]:
    return {
        "lr": ParamSpec(1e-5, 1e-3, log=True),
        "weight_decay": ParamSpec(1e-6, 1e-2, log=True),
        "dropout": ParamSpec(0.0, 0.5),
        "hidden": ParamSpec(choices=[64, 128, 256]),
        "attn_hidden": ParamSpec(choices=[32, 64, 128]),
    }


def _de_space() -> dict[str, ParamSpec]:
    """What changes the default registered DE method (``summaries/rrr``): its slide summaries' PCA width, prototype
    count and centring (rrr's penalty and rank are chosen by its own nested CV)."""
    return {
        "summary_pca_dim": ParamSpec(choices=[8, 16, 32]),
        "n_prototypes": ParamSpec(choices=[0, 8, 16, 32]),
        "summary_center_slides": ParamSpec(choices=[False, True]),
    }


@dataclass(frozen=True)
class StudySettings:
    """What every study shares: trial budget, folds per trial, sampler/pruner start-up, the space.

    ``folds``: the first k folds of the saved patient splits evaluated per trial (null = all).
    ``resume``: false starts the study afresh (deterministic reruns); true adds trials to the stored one.
    ``startup_trials``: random trials before TPE models the space. The MedianPruner prunes a trial whose
    running objective after a fold is worse than the median of earlier trials at that fold, once
    ``prune_startup_trials`` trials finished and after ``prune_warmup_folds`` folds.
    """

    study: str = "tune"
    n_trials: int = 6
    timeout_s: float | None = None
    folds: int | None = None
    resume: bool = False
    startup_trials: int = 3
    prune_startup_trials: int = 2
    prune_warmup_folds: int = 1
    fixed: dict[str, Any] = field(default_factory=dict)
    space: dict[str, ParamSpec] = field(default_factory=dict)

    target: ClassVar[type] = MilConfig  # the config class whose keys ``space`` and ``fixed`` name

    def _check(self, where: str) -> None:
        for name in ("n_trials", "startup_trials"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("prune_startup_trials", "prune_warmup_folds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: must be >= 0, got {getattr(self, name)}")
        if self.folds is not None and self.folds < 1:
            raise ConfigError(f"{where}.folds: must be >= 1 or null (all folds), got {self.folds}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"{where}.timeout_s: must be > 0 or null (no limit), got {self.timeout_s}")
        if not self.space:
            raise ConfigError(f"{where}.space: empty; name at least one key to search")
        valid = {f.name for f in dataclasses.fields(self.target)}
        section = where.split(".")[-1]
        for kind, keys in (("space", self.space), ("fixed", self.fixed)):
            unknown = sorted(set(keys) - valid)
            if unknown:
                raise ConfigError(
                    f"{where}.{kind}: unknown key(s) {unknown}; they must be keys of the {section} section: "
                    f"{sorted(valid)}"
                )
        both = sorted(set(self.space) & set(self.fixed))
        if both:
            raise ConfigError(f"{where}: key(s) {both} are both searched and fixed; drop them from one")
        for key, spec in self.space.items():
            spec.check(f"{where}.space.{key}")
        build(self.target, dict(self.fixed), f"{where}.fixed")  # type-checks the fixed values


@dataclass(frozen=True)
class MilTuneConfig(StudySettings):
    """``tune.mil``: objective ``auc`` maximises the mean held-out ROC-AUC over the trial's folds;
    ``val_loss`` minimises the mean best validation loss. ``pooling`` null = ``mil.pooling``."""

    study: str = "tune_mil"
    n_trials: int = 6
    timeout_s: float | None = None
    folds: int | None = 3
    objective: Literal["auc", "val_loss"] = "auc"
    pooling: str | None = None
    space: dict[str, ParamSpec] = field(default_factory=_mil_space)

    def __post_init__(self) -> None:
        self._check("tune.mil")

    @property
    def direction(self) -> str:
        return "maximize" if self.objective == "auc" else "minimize"


@dataclass(frozen=True)
class DeTuneConfig(StudySettings):
    """``tune.de``: tunes DE method ``method`` (null: ``de.method``, the registered one); the objective is a
    summary of the per-gene held-out metrics of the pooled fold predictions (``pearson_r_mean``: mean Pearson
    over panel genes, as train_de reports it), or ``cv_null_z`` / ``cv_null_top_z``: the z of that mean (of the
    top tenth of genes) against ``null_shuffles`` runs of the same trial on targets shuffled across patients.
    ``space`` may only name keys that change that method (``histcode.genes.methods.method_keys``), checked when
    the study starts."""

    target: ClassVar[type] = DEConfig
    study: str = "tune_de"
    n_trials: int = 6
    timeout_s: float | None = None
    folds: int | None = 3
    method: str | None = None
    objective: Literal["pearson_r_mean", "pearson_r_median", "spearman_r_mean", "mse_mean", "cv_null_z",
                       "cv_null_top_z"] = "pearson_r_mean"
    null_shuffles: int = 10
    space: dict[str, ParamSpec] = field(default_factory=_de_space)

    def __post_init__(self) -> None:
        self._check("tune.de")
        if self.objective.startswith("cv_null") and self.null_shuffles < 2:
            raise ConfigError(f"tune.de.null_shuffles: objective {self.objective} needs >= 2 shuffled-target runs "
                              f"per trial, got {self.null_shuffles}")
        if self.method is not None:
            from histcode.genes.methods import parse_method

            try:
                parse_method(self.method)
            except ValueError as exc:
                raise ConfigError(f"tune.de.method: {exc}") from None

    @property
    def direction(self) -> str:
        return "minimize" if self.objective == "mse_mean" else "maximize"


@dataclass(frozen=True)
class TuneConfig:
    """``tune``: where the Optuna sqlite stores live (``<storage_dir>/<study>.db``) and the studies."""

    storage_dir: Path = Path("optuna")
    mil: MilTuneConfig = field(default_factory=MilTuneConfig)
    de: DeTuneConfig = field(default_factory=DeTuneConfig)
