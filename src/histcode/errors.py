"""User errors end a command with their message, not a traceback: a wrong key in params.yaml, a missing
registry alias, an unwritable folder or a broken sample sheet is something to fix, not a bug to debug."""

from __future__ import annotations

import sys

# (module, class): errors whose message already names the file/key/model and the fix
USER_ERRORS = (
    ("histcode.config", "ConfigError"),
    ("histcode.registry.models", "RegistryError"),
    ("histcode.preflight", "OutputError"),
    ("histcode.preflight", "EmptyCohortError"),
    ("histcode.cohort.tables", "IngestError"),
    ("histcode.cohort.validation", "ValidationError"),
    ("histcode.expression.build", "TargetsError"),
    ("histcode.ssl.trainer", "TileReadError"),
    ("histcode.server", "ServerError"),
)


def user_error_types() -> tuple[type[BaseException], ...]:
    """The classes above whose module is loaded (an error of a module never imported cannot be raised)."""
    found = []
    for module, name in USER_ERRORS:
        mod = sys.modules.get(module)
        cls = getattr(mod, name, None) if mod is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)
