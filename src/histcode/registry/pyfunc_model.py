"""MLflow "models from code" entry point: the pyfunc flavour of every registered HistCode model.

MLflow stores this file with each version instead of a pickle; ``mlflow.pyfunc.load_model`` (the UI,
``mlflow models predict/serve``) runs it, and it rebuilds the model from ``spec.json`` + safetensors
weights with the project's own code. ``histcode`` itself never runs it: ``registry.load_model`` checks the
registered sha256 digests and the package that owns the model kind builds the module.

This file runs outside the project's layers (inside MLflow's loader), so it names each kind's builder in a
fixed table and imports it by name, leaving the registry package free of the model packages.
"""

from __future__ import annotations

import importlib
from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

# kind → (module, builder): the project's own code, never a name read from the artifact
BUILDERS = {
    "mil": ("histcode.mil.model", "mil_from_stored"),
    "encoder": ("histcode.ssl.backbone", "encoder_from_stored"),
    "de": ("histcode.genes.heads", "de_from_stored"),
    "de_linear": ("histcode.genes.heads", "de_from_stored"),
}


class StateDictModel(PythonModel):  # type: ignore[misc]
    def load_context(self, context: Any) -> None:
        from histcode.registry.safe_model import read_model_files

        stored = read_model_files(context.artifacts["weights"], context.artifacts["spec"])
        module, builder = BUILDERS[stored.kind]
        self.model = getattr(importlib.import_module(module), builder)(stored)

    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> np.ndarray:
        # np.ndarray is a hint MLflow derives no signature from (the logged one comes from real tensors) and does
        # not convert inputs for; without any hint it printed "Add type hints to `predict`" at every
        # registration and load. Inputs arrive as arrays or DataFrames: np.asarray takes both.
        import torch

        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            out = self.model(x)
        if isinstance(out, tuple | list):
            out = out[0]
        return out.detach().cpu().numpy()


mlflow.models.set_model(StateDictModel())
