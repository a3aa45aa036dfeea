"""Log, register and load PyTorch models through the MLflow registry (DESIGN §5).

Models are logged with the pickle serialization on purpose: MLflow 3's default ``pt2`` export fixes the
input height/width of the example, while our encoders see any tile size and MIL models any bag length.
New versions get the alias ``challenger``; only the promotion gate moves ``champion``. Registry stages are
deprecated and never used.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from histcode import __version__, tracking

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
MODEL_NAMES = ("histcode-encoder", "histcode-mil", "histcode-de")


class RegistryError(RuntimeError):
    """A registered model or alias is missing, with the command that creates it."""


def _client() -> Any:
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri())
    return mlflow.MlflowClient()


def model_uri(name: str, alias: str = CHAMPION) -> str:
    return f"models:/{name}@{alias}"


def log_and_register(
    model: Any,
    name: str,
    *,
    input_example: np.ndarray,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    alias: str = CHALLENGER,
) -> Any:
    """Log ``model`` in the active run, register it as a new version of ``name`` and alias it ``challenger``.

    The version is tagged with the run's git commit, DVC data hash and run id so every registered model links
    back to code, data and training run. ``metrics`` are stored as version tags ``metric.<key>``.
    Returns the ``ModelVersion``.
    """
    import mlflow
    import torch
    from mlflow.models import infer_signature

    run = mlflow.active_run()
    if run is None:
        raise RegistryError(f"log_and_register({name!r}) must be called inside an active MLflow run.")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.asarray(input_example)))
    if isinstance(out, tuple | list):
        out = out[0]
    if isinstance(out, dict):
        out = next(iter(out.values()))
    signature = infer_signature(np.asarray(input_example), out.detach().float().cpu().numpy())
    model.train(was_training)
    info = mlflow.pytorch.log_model(
        model,
        name=name.replace("histcode-", ""),
        signature=signature,
        input_example=np.asarray(input_example),
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"histcode=={__version__}"],
        registered_model_name=name,
        await_registration_for=60,
    )
    version = str(info.registered_model_version)
    client = _client()
    run_tags = run.data.tags
    version_tags = {
        "git_commit": run_tags.get("git_commit", tracking.git_commit()),
        "dvc_data_hash": run_tags.get("dvc_data_hash", ""),
        "run_id": run.info.run_id,
        "stage": run_tags.get("histcode.stage", ""),
        **(tags or {}),
    }
    for key, value in (metrics or {}).items():
        version_tags[f"metric.{key}"] = f"{float(value):.6g}"
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    client.set_registered_model_alias(name, alias, version)
    log.info("registered %s version %s as @%s (run %s)", name, version, alias, run.info.run_id)
    return client.get_model_version(name, version)


def get_version(name: str, alias: str = CHAMPION) -> Any:
    """The ``ModelVersion`` behind ``name@alias``; ``RegistryError`` with the fix if there is none."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        hint = (
            "run `dvc repro` (or the stage that trains it) to register a challenger"
            if alias == CHALLENGER
            else "run `make promote` after `dvc repro` to promote a challenger to champion"
        )
        raise RegistryError(f"no model version {name}@{alias} in {tracking.tracking_uri()}: {hint}.") from exc


def load_model(name: str, alias: str = CHAMPION) -> Any:
    """Load the PyTorch model ``models:/<name>@<alias>`` (eval mode)."""
    import mlflow

    get_version(name, alias)  # clear error when missing
    model = mlflow.pytorch.load_model(model_uri(name, alias), map_location="cpu")
    model.eval()
    return model
