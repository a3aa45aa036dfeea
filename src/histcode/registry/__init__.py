"""MLflow model registry: log + register with lineage tags, load by alias, evidence, promotion gate."""

from histcode.registry.models import (
    CHALLENGER,
    CHAMPION,
    ModelRef,
    RegistryError,
    get_version,
    load_model,
    load_model_uri,
    log_and_register,
    model_uri,
    parse_model_uri,
    version_of,
)
from histcode.registry.names import MODEL_NAMES

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_NAMES",
    "ModelRef",
    "RegistryError",
    "get_version",
    "load_model",
    "load_model_uri",
    "log_and_register",
    "model_uri",
    "parse_model_uri",
    "version_of",
]
