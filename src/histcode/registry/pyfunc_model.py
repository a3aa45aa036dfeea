"""MLflow "models from code" entry point: the pyfunc flavour of every registered HistCode model.

MLflow stores this file with each version instead of a pickle; ``mlflow.pyfunc.load_model`` (the UI,
``mlflow models predict/serve``) runs it, and it rebuilds the model from ``spec.json`` + safetensors
weights with the project's own code. ``histcode`` itself never runs it: ``registry.load_model`` checks the
registered sha256 digests and builds the module directly.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel


class StateDictModel(PythonModel):  # type: ignore[misc]
    def load_context(self, context: Any) -> None:
        from histcode.registry.safe_model import build_from_files

        self.model = build_from_files(context.artifacts["weights"], context.artifacts["spec"])

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # no hints: MLflow
        # would derive a (wrong) signature from them; the logged signature comes from the real tensors
        import numpy as np
        import torch

        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            out = self.model(x)
        if isinstance(out, tuple | list):
            out = out[0]
        return out.detach().cpu().numpy()


mlflow.models.set_model(StateDictModel())
