"""What a user sees: progress (bars in a terminal, lines in logs), the log format, one-line errors.

tqdm redraws its bar with ``\\r``; captured by DVC or a log file that becomes one line of tens of thousands of
characters. ``histcode.console.tqdm`` is a drop-in for the calls the stages make (iterate, ``update``,
``set_postfix``, ``close``): on a terminal it *is* tqdm; otherwise it logs one line per item (slide, epoch,
gene) for short loops and one line per ``LOG_EVERY_S`` seconds for long ones (tiles), plus a final line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from histcode.errors import HistcodeError

log = logging.getLogger(__name__)

LOG_EVERY_S = 15.0  # long loops (tiles, steps) log at most this often when not on a terminal
PER_ITEM_MAX = 2000  # loops up to this many items log every item (slides, epochs, genes)
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
MLFLOW_BARS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def interactive() -> bool:
    """True when stderr is a terminal (``HISTCODE_PROGRESS=bars|lines`` overrides the guess)."""
    forced = os.environ.get("HISTCODE_PROGRESS", "").lower()
    if forced in ("bars", "lines"):
        return forced == "bars"
    return sys.stderr.isatty()


def setup_logging(level: int = logging.INFO) -> None:
    """The one log format of the CLI and the DVC stage scripts: time, module logger name, level, message.

    Off a terminal, MLflow's own artifact download/upload bars are turned off too (a user's setting wins): they
    redraw with ``\r``, which a log keeps as one long line."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    if not interactive():
        os.environ.setdefault(MLFLOW_BARS_ENV, "false")


@contextlib.contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    """Run a command/stage; a user error (any ``histcode.errors.HistcodeError``: bad params, missing model or
    alias, unwritable folder, bad sheet, bad server state) prints ``<prog>: error: <message>`` and exits with
    status 2. The message already names the file/key/model and the fix, so no traceback."""
    try:
        yield
    except HistcodeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def summary_line(title: str, metrics: Mapping[str, Any], family: str | None = None) -> str:
    """A stage's result as one readable line: its paper-table keys (histcode.tables) as ``key=value``; what every
    stage command prints, so it names only keys its metrics have (it cannot drift from the writer)."""
    from histcode import tables

    shown = tables.table(family, metrics) if family in tables.TABLE_KEYS else {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()]
    return f"{title}: " + (", ".join(parts) if parts else "no numeric results")


class LogProgress:
    """What a tqdm bar reports, as log lines: ``<desc>: 3/48 slide (6%), 2.1 slide/s, failed=0``."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, desc: str = "", total: float | None = None,
                 unit: str = "it", disable: bool = False, initial: float = 0, per_item: bool = True,
                 **_: Any) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.desc, self.total, self.unit, self.disable = desc, total, unit, disable
        self.n = initial
        self.postfix = ""
        self._t0 = self._last = time.monotonic()
        self._per_item = per_item and total is not None and total <= PER_ITEM_MAX
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, final: bool = False) -> None:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        done = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        tail = f", {self.postfix}" if self.postfix else ""
        word = "done in" if final else "elapsed"
        log.info("%s: %s %s%s, %.3g %s/s, %s %.0f s%s", self.desc or "progress", done, self.unit, pct,
                 self.n / elapsed, self.unit, word, elapsed, tail)
        self._last = time.monotonic()

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.disable:
            return
        if self._per_item or time.monotonic() - self._last >= LOG_EVERY_S:
            self._line()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable and not self._per_item and self.n:
            self._line(final=True)


def tqdm(iterable: Iterable[Any] | None = None, *args: Any, per_item: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar on a terminal; a :class:`LogProgress` (log lines) elsewhere. ``per_item=False``: a fast loop
    inside a step (a model's predictions over the cohort's slides, random draws) logs like a long loop (every
    ``LOG_EVERY_S`` and a final line), not a line per item: train_mil logged 384 lines of them per run."""
    if interactive():
        from tqdm.auto import tqdm as _tqdm

        return _tqdm(iterable, *args, **kwargs)
    return LogProgress(iterable, per_item=per_item, **kwargs)
