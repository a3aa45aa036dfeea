"""The registry's door to MLflow: histcode.registry reaches mlflow only through these functions."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from histcode.tracking.replay import replay_spool
from histcode.tracking.runs import spooled
from histcode.tracking.store import spool_root, tracking_uri


def client() -> Any:
    """An ``MlflowClient`` on the project's tracking store (deferred runs replayed first)."""
    import mlflow

    uri = tracking_uri()
    root = spool_root(uri)
    if root is not None:
        replay_spool(root)
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient()


def download_artifacts(**kwargs: Any) -> str:
    """``mlflow.artifacts.download_artifacts`` (artifact_uri= or run_id= + artifact_path=, dst_path=)."""
    import mlflow

    return str(mlflow.artifacts.download_artifacts(**kwargs))


def model_version_by_alias(mlflow_client: Any, name: str, alias: str) -> Any | None:
    """The ``ModelVersion`` behind ``name@alias``, or None when the registry has none."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


# MLflow's message starts with an ANSI colour code
NO_INPUT_EXAMPLE = r".*An input example was not provided when logging the model"


def log_pyfunc_model(name: str, *, python_model: str, artifacts: dict[str, str], input_example: Any, output: Any,
                     pip_requirements: list[str], registered_model_name: str) -> Any:
    """Log a pyfunc "model from code" in the active run (signature inferred from ``input_example`` → ``output``)
    and register it as a new version of ``registered_model_name``; returns MLflow's ``ModelInfo``."""
    spooled("log_pyfunc_model")
    import mlflow
    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        # a hint that does not apply, printed on every `make demo` registration: the signature is given (inferred
        # above from real tensors); storing the example too would make MLflow load and run each model once more
        warnings.filterwarnings("ignore", message=NO_INPUT_EXAMPLE, category=UserWarning)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=python_model,
            artifacts=artifacts,
            signature=infer_signature(input_example, output),
            pip_requirements=pip_requirements,
            registered_model_name=registered_model_name,
            await_registration_for=60,
        )


def log_history(run_id: str, history: list[Mapping[str, float]], step_key: str = "epoch") -> None:
    """A finished curve (one dict per step, its step under ``step_key``) written to run ``run_id`` in batches."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(row[step_key])) for row in history for k, v in row.items()
               if k != step_key]
    mlflow_client = client()
    for i in range(0, len(metrics), 1000):
        mlflow_client.log_batch(run_id, metrics=metrics[i : i + 1000])


def terminate_run(run_id: str, status: str) -> None:
    """Mark a finished run ``status`` (e.g. ``KILLED`` for a pruned trial)."""
    client().set_terminated(run_id, status=status)
