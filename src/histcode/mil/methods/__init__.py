"""MIL methods beyond the basic poolings, one module per paper; importing this package registers them."""

from histcode.mil.methods import clam, dsmil, mil_rnn, transmil  # noqa: F401
