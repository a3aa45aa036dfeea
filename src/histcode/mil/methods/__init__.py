"""MIL methods, one module per paper (``basic``: gated attention, ABMIL, mean, max); importing this package
registers them in ``histcode.mil.pool_base``."""

from histcode.mil.methods import basic, clam, dsmil, mil_rnn, transmil  # noqa: F401
