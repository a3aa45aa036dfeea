"""The prologue every stage shares: params → typed config, seed, paths, a lazily opened MLflow run whose metrics
are written to DVC and MLflow on exit.

``open_stage`` reads the params once (a file or an already loaded dict), types ``base`` and the stage's own
section, seeds the RNGs when asked and derives the data layout; nothing here imports mlflow, torch or pandas,
so a stage that finds its outputs complete returns before paying for them. ``Stage.run`` opens the MLflow run
only when the stage has work to do; the metrics set on it go to the run and to ``reports/metrics/<name>.json``
(+ its paper-table keys, ``histcode.tables``) when the block ends without an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histcode.config import DEFAULT_PARAMS, BaseConfig, base, load_params, section
from histcode.paths import Paths


@dataclass
class StageRun:
    """The open MLflow run of a stage; ``metrics`` set here are written on a clean exit of ``Stage.run``."""

    run: Any
    metrics: Mapping[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return str(self.run.info.run_id)


@dataclass(frozen=True)
class Stage:
    """A stage's inputs after the prologue: its params, ``base``, its typed section and the data layout."""

    name: str
    params: dict[str, Any]
    base: BaseConfig
    paths: Paths
    cfg: Any = None

    @property
    def seed(self) -> int:
        return self.base.seed

    @contextlib.contextmanager
    def run(self, experiment: str, *, run_name: str, metrics: str | None = None, cohort: str | None = None,
            params: Mapping[str, Any] | None = None, inputs: list[str | Path] | None = None,
            tags: Mapping[str, str] | None = None, defer: bool = False) -> Iterator[StageRun]:
        """Open the stage's MLflow run (tagged with its name); on a clean exit its ``metrics`` go to MLflow and,
        when ``metrics`` names one, to ``reports/metrics/<metrics>.json``. ``defer``: a light stage records the
        run and returns; a detached process logs it (``tracking.start_run``)."""
        from histcode import tracking

        with tracking.start_run(experiment, run_name=run_name, stage=self.name, cohort=cohort, params=params,
                                inputs=inputs, tags=tags, defer=defer) as run:
            current = StageRun(run)
            yield current
            if current.metrics is not None:
                tracking.log_metrics(current.metrics, self.paths.metrics(metrics) if metrics else None)


def open_stage(name: str, params: str | Path | dict[str, Any] = DEFAULT_PARAMS, config: type | None = None,
               section_name: str | None = None, *, seed: bool = False) -> Stage:
    """The prologue of stage ``name``: ``params`` (path or dict) → ``base`` + section ``section_name`` (default
    ``name``) typed as ``config``; with ``seed`` every RNG is seeded from ``base.seed``."""
    data = params if isinstance(params, dict) else load_params(params)
    bcfg = base(data)
    cfg = section(config, section_name or name, data) if config is not None else None
    if seed:
        from histcode.seeding import seed_everything

        seed_everything(bcfg.seed)
    return Stage(name, data, bcfg, Paths.from_base(bcfg), cfg)
