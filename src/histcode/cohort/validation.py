"""great-expectations suites for every cohort table, with readable failures.

Why: a bad sample sheet must stop ingest with a message a pathologist can act on ("slides.csv line 7:
slide_id 'X' appears twice"), not a GE traceback, and the full result must be kept as a JSON report.
We run GE 1.x in an *ephemeral* context on an in-memory pandas dataframe asset, so nothing GE-specific
is written into the repository. Row numbers are file line numbers (header = line 1) because the tables
are read with that index (see ``histcode.cohort.tables``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from histcode.errors import HistcodeError

log = logging.getLogger(__name__)
MAX_ROWS_IN_MESSAGE = 10
MAX_ROWS_IN_REPORT = 200


class ValidationError(HistcodeError, ValueError):
    """A table failed one or more expectations; ``report`` holds the structured result."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class TableSpec:
    """What a table must satisfy. Each field becomes one or more GE expectations.

    ``positive``: values > 0 where given (nulls allowed). ``files_exist``: columns holding paths that
    must exist on disk (checked through a derived boolean column, reported with the path itself).
    """

    name: str
    required: tuple[str, ...]
    not_null: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()
    in_set: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    regex: dict[str, str] = field(default_factory=dict)
    positive: tuple[str, ...] = ()
    files_exist: tuple[str, ...] = ()
    hints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Check:
    expectation: Any
    column: str  # the column whose values identify offending rows in messages
    what: str
    fix: str


def _import_gx() -> Any:
    """Import GE quietly: no usage analytics, and none of its hundreds of INFO lines in the stage's log."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)  # set INFO by GE
    return gx


def _checks(spec: TableSpec, columns: Iterable[str]) -> list[_Check]:
    gx = _import_gx()
    present = set(columns)
    ex = gx.expectations
    checks = [
        _Check(ex.ExpectColumnToExist(column=c), c, f"required column {c!r} is missing",
               spec.hints.get("required", f"add a {c!r} column (columns: {', '.join(spec.required)})"))
        for c in spec.required
    ]
    for c in spec.not_null:
        if c in present:
            checks.append(_Check(ex.ExpectColumnValuesToNotBeNull(column=c), c, f"{c!r} is empty",
                                 spec.hints.get(c, f"fill in {c!r} for these rows")))
    for c in spec.unique:
        if c in present:
            checks.append(_Check(ex.ExpectColumnValuesToBeUnique(column=c), c, f"{c!r} is not unique",
                                 spec.hints.get(f"unique:{c}", f"each {c!r} must appear once; remove duplicates")))
    for c, values in spec.in_set.items():
        if c in present:
            checks.append(_Check(ex.ExpectColumnValuesToBeInSet(column=c, value_set=list(values)), c,
                                 f"{c!r} is not one of {_show_set(values)}",
                                 spec.hints.get(f"set:{c}", f"correct the {c!r} values")))
    for c, pattern in spec.regex.items():
        if c in present:
            checks.append(_Check(ex.ExpectColumnValuesToMatchRegex(column=c, regex=pattern), c,
                                 f"{c!r} does not match {pattern}",
                                 spec.hints.get(f"regex:{c}", f"correct the {c!r} values")))
    for c in spec.positive:
        if c in present:
            checks.append(_Check(ex.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True), c,
                                 f"{c!r} is not > 0", spec.hints.get(f"positive:{c}", f"{c!r} must be positive")))
    for c in spec.files_exist:
        if c in present:
            checks.append(_Check(ex.ExpectColumnValuesToBeInSet(column=f"{c}__exists", value_set=[True]), c,
                                 f"file in {c!r} does not exist",
                                 spec.hints.get(f"exists:{c}", "download the file or fix the path")))
    return checks


def _show_set(values: tuple[Any, ...]) -> str:
    shown = sorted(map(str, values))
    return str(shown) if len(shown) <= 6 else f"the {len(shown)} allowed values ({', '.join(shown[:4])}, ...)"


def _run_ge(df: pd.DataFrame, spec: TableSpec, checks: list[_Check]) -> list[Any]:
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = ctx.data_sources.add_pandas("histcode").add_dataframe_asset(spec.name)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name=spec.name)
    for i, check in enumerate(checks):
        check.expectation.meta = {"histcode_check": i}
        suite.add_expectation(check.expectation)
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    # GE groups results by column, not in suite order: map them back through the meta tag
    by_index = {int(r.expectation_config.meta["histcode_check"]): r for r in result.results}
    return [by_index[i] for i in range(len(checks))]


def validate_table(df: pd.DataFrame, spec: TableSpec, *, source: str | Path) -> dict[str, Any]:
    """Run ``spec`` on ``df`` (index = file line numbers); return a JSON-able report entry (never raises)."""
    work = df.copy()
    work.index.name = None  # GE reports a named index as {name: value} dicts; plain labels keep rows simple
    for c in spec.files_exist:
        if c in work.columns:
            work[f"{c}__exists"] = [isinstance(p, str) and Path(p).exists() for p in work[c]]
    checks = _checks(spec, work.columns)
    results = _run_ge(work, spec, checks)
    entries = []
    for check, res in zip(checks, results, strict=True):
        rows = list(res.result.get("unexpected_index_list") or [])
        col = check.column
        values = [_plain(df.at[r, col]) if col in df.columns else None for r in rows]
        entries.append({
            "expectation": res.expectation_config.type,
            "column": col,
            "success": bool(res.success),
            "problem": check.what,
            "fix": check.fix,
            "unexpected_count": int(res.result.get("unexpected_count") or 0),
            "rows": [_plain(r) for r in rows[:MAX_ROWS_IN_REPORT]],
            "values": values[:MAX_ROWS_IN_REPORT],
            "exception": (res.exception_info or {}).get("exception_message"),
        })
    return {
        "table": spec.name,
        "file": str(source),
        "n_rows": len(df),
        "success": all(e["success"] for e in entries),
        "checks": entries,
    }


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return None
    return v.item() if hasattr(v, "item") else v


def format_failures(entry: dict[str, Any]) -> str:
    """A readable multi-line message: file, failed expectation, offending rows and the fix."""
    lines = [f"{entry['file']}: {entry['table']} failed validation ({entry['n_rows']} rows):"]
    for e in entry["checks"]:
        if e["success"]:
            continue
        head = f"  - {e['expectation']}({e['column']}): {e['problem']}"
        if e["exception"]:
            head += f" [check could not run: {e['exception']}]"
        if e["rows"]:
            pairs = zip(e["rows"], e["values"], strict=False)
            shown = [f"line {r}: {v!r}" for r, v in pairs][:MAX_ROWS_IN_MESSAGE]
            more = e["unexpected_count"] - len(shown)
            tail = f"; and {more} more" if more > 0 else ""
            head += f" in {e['unexpected_count']} row(s): " + "; ".join(shown) + tail
        lines.append(head + f". Fix: {e['fix']}.")
    return "\n".join(lines)


_PROCESS: ProcessPoolExecutor | None = None  # set inside ``validation_process``


def _load_gx() -> None:
    _import_gx()


@contextlib.contextmanager
def validation_process() -> Iterator[None]:
    """Validate the tables of this block in a process started now: great-expectations' ~2 s of imports then run
    on another core while this one reads the inputs and opens its MLflow run, instead of before the first check
    (on the demo: ``ingest`` and ``de_targets`` spend 1.9 of their 4.5-6 s importing it). The entries are the
    ones ``validate_table`` gives here."""
    from histcode.worker_pool import process_pool

    global _PROCESS
    pool = process_pool(1)
    try:
        if pool is not None:
            try:
                pool.submit(_load_gx)
                _PROCESS = pool
            except (BrokenProcessPool, OSError) as exc:  # no second process here: validate in this one
                log.warning("validation process could not start (%s); validating in this process", exc)
        yield
    finally:
        _PROCESS = None
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def check_table(df: pd.DataFrame, spec: TableSpec, *, source: str | Path, report: list[dict[str, Any]]) -> None:
    """Validate (in ``validation_process``'s process when one is open), append the entry to ``report``, and raise
    ``ValidationError`` if anything failed."""
    entry = None
    if _PROCESS is not None:
        try:
            entry = _PROCESS.submit(validate_table, df, spec, source=source).result()
        except (BrokenProcessPool, OSError) as exc:  # the process died or could not start: validate here
            log.warning("validation process unavailable (%s); validating %s in this process", exc, spec.name)
    if entry is None:
        entry = validate_table(df, spec, source=source)
    report.append(entry)
    if not entry["success"]:
        raise ValidationError(format_failures(entry), {"tables": report})
