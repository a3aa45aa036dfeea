"""MLflow model registry: log + register with lineage tags, load by alias, evidence, promotion gate."""

from histcode.registry.models import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAMES,
    RegistryError,
    get_version,
    load_model,
    log_and_register,
    model_uri,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_NAMES",
    "RegistryError",
    "get_version",
    "load_model",
    "log_and_register",
    "model_uri",
]
