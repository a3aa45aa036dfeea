"""Evaluation: classification metrics with CIs, DE statistics, plots and reports."""
