"""Optuna hyperparameter sweeps of the MIL classifier and the DE heads (issue 7 §3)."""
