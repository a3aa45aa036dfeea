"""The one root of user errors: a wrong key in params.yaml, a missing registry alias, an unwritable folder or a
broken sample sheet is something to fix, not a bug to debug.

Every such error class subclasses :class:`HistcodeError` (beside the builtin it always was, e.g. ``ValueError``,
so existing ``except`` clauses keep working); ``histcode.console.one_line_errors`` catches the root once and
prints the message, which names the file (key, model) and the fix, as one line without a traceback.
"""

from __future__ import annotations


class HistcodeError(Exception):
    """A user error: its message names the file/key/model at fault and how to fix it."""
