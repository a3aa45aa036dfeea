"""Scores and their plots on plain arrays: classification, calibration, thresholds, DE statistics, attention
against a truth region. Below mil, so every layer that trains or evaluates a model shares one implementation."""
