"""Slide-level multiple-instance learning: pooling, classifier, cross-validation, attention export.

Modules in data-flow order: ``pooling`` (gated attention / mean / max, ``create_pooling``), ``model``
(``MilClassifier``, ``save_mil``/``load_mil``), ``bags`` (features h5 → bags in bounded memory), ``augment``
(tile dropout, feature noise), ``train`` (Adam + early stopping), ``cv`` (patient-level folds, final refit),
``inference`` (streamed prediction, attention files), ``report``, ``decision`` (threshold from the CV held-out
predictions, CV calibration), ``final`` + ``stage`` (the train_mil DVC stage), ``external`` (scoring a cohort;
the workflow is ``histcode.evaluation.champion_external``). Attention vs synthetic truth:
``heatmaps.attention_truth`` (scored by ``metrics.attention_truth``).
"""
