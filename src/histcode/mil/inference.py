"""Slide predictions and attention export in bounded memory (features streamed from h5 in chunks).

Attention files (DESIGN §4) ``attention/<cohort>/<pooling>/<slide_id>.h5`` hold ``coords`` int32 (N, 2),
``attention_raw`` (N,) pre-softmax scores and ``attention`` (N,) weights summing to 1, in the tile order of
the features file. A slide that fails is recorded with its reason; the others continue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from histcode.console import tqdm
from histcode.io.attention import write_attention
from histcode.io.features import feature_shape, read_feature_coords
from histcode.mil.bags import BagChunks
from histcode.mil.model import MilClassifier, MilOutput


def predict_file(model: MilClassifier, path: str | Path, *, chunk_tiles: int = 8192) -> MilOutput:
    """Predict one slide from its features h5 without loading the whole bag."""
    try:
        _, d = feature_shape(path)
    except KeyError:
        raise ValueError(f"{path}: no 'features' dataset; not a features file (rerun `dvc repro extract`)") from None
    if d != model.in_dim:
        raise ValueError(
            f"{path}: features have {d} dims but the MIL model expects {model.in_dim}; "
            "use the model trained on this encoder's features"
        )
    return model.predict_stream(BagChunks(path, chunk_tiles))


def predict_slides(
    model: MilClassifier,
    paths: dict[str, Path],
    *,
    chunk_tiles: int = 8192,
    attention_dir: str | Path | None = None,
    attrs: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """P(tumour) per slide (DataFrame slide_id, prob_tumor, n_tiles) and {failed slide_id: reason}; with
    ``attention_dir`` also writes each slide's attention file there."""
    rows: list[tuple[str, float, int]] = []
    failures: dict[str, str] = {}
    for sid, path in tqdm(sorted(paths.items()), desc="mil predict", disable=not progress, leave=False,
                         per_item=False):
        try:
            out = predict_file(model, path, chunk_tiles=chunk_tiles)
            if attention_dir is not None:
                coords = read_feature_coords(path)
                if len(coords) != out.weights.shape[0]:
                    raise ValueError(f"{path}: {len(coords)} coords but {out.weights.shape[0]} feature rows")
                write_attention(
                    Path(attention_dir) / f"{sid}.h5",
                    coords,
                    out.scores.numpy(),
                    out.weights.numpy(),
                    {**(attrs or {}), "slide_id": sid, "features_file": str(path)},
                    prob_tumor=float(out.prob[1]),
                )
            rows.append((sid, float(out.prob[1]), int(out.weights.shape[0])))
        except (OSError, ValueError, KeyError) as exc:
            failures[sid] = f"{type(exc).__name__}: {exc}"
    return pd.DataFrame(rows, columns=["slide_id", "prob_tumor", "n_tiles"]), failures
