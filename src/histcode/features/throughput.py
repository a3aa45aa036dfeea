"""The speed of the extraction run that embedded a cohort's feature files, kept for the runs that resume them.

A rerun of ``extract`` (a code edit under its DVC deps, ``dvc repro --force``) usually finds every slide
finished and embeds nothing; its metrics used to report ``tiles_per_s`` 0 and ``seconds`` 0, which read as a
broken encoder. The run that embeds tiles records its numbers here, with the encoder identities they belong to;
a run that embeds nothing reports those numbers and says so (``tiles_this_call`` 0, ``seconds_this_call``).

The record is workspace-local (``.histcode/extract/<cohort>.json``, beside the stage stamps), not a DVC output:
timings differ from run to run, and the feature files must stay byte-reproducible.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from histcode.paths import Paths

RECORD_DIR = Path(".histcode") / "extract"
SPEED_KEYS = ("tiles", "seconds", "tiles_per_s", "embeddings_per_s")


def record_root(paths: Paths) -> Path:
    """The project root the records live under: the folder holding ``data_dir`` (the working directory when
    ``data_dir`` is the usual relative ``data``)."""
    return Path(paths.data_dir).absolute().parent


def _path(cohort: str, root: Path | None = None) -> Path:
    return (root or Path.cwd()) / RECORD_DIR / f"{cohort}.json"


def record(cohort: str, identities: Mapping[str, str], stats: Mapping[str, float], *,
           root: Path | None = None) -> None:
    """Keep ``stats`` (``SPEED_KEYS``) of a run that embedded tiles with encoders of these identities."""
    from histcode.atomic import write_json

    if float(stats.get("tiles", 0.0)) <= 0:
        return
    write_json(_path(cohort, root), {"identities": dict(sorted(identities.items())),
                                     **{k: float(stats[k]) for k in SPEED_KEYS}})


def earlier(cohort: str, identities: Mapping[str, str], *, root: Path | None = None) -> dict[str, float] | None:
    """``SPEED_KEYS`` of the last run that embedded tiles for exactly these encoder identities, else None."""
    try:
        data: dict[str, Any] = json.loads(_path(cohort, root).read_text())
        if data.get("identities") != dict(sorted(identities.items())):
            return None
        return {k: float(data[k]) for k in SPEED_KEYS}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def speed_metrics(cohort: str, identities: Mapping[str, str], stats: Mapping[str, float], seconds_this_call: float,
                  *, root: Path | None = None) -> dict[str, float]:
    """The speed metrics of a run: its own when it embedded tiles (and recorded), else those of the run that
    embedded the files it found (zeros when none is known), plus what this call did."""
    this_call = {"tiles_this_call": float(stats.get("tiles", 0.0)), "seconds_this_call": float(seconds_this_call)}
    if float(stats.get("tiles", 0.0)) > 0:
        record(cohort, identities, stats, root=root)
        return {**{k: float(stats[k]) for k in SPEED_KEYS}, **this_call}
    known = earlier(cohort, identities, root=root) or dict.fromkeys(SPEED_KEYS, 0.0)
    return {**known, **this_call}
