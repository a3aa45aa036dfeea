"""DE inputs (issue 6 §3): mean embedding of the top-l and bottom-l attention tiles of a tumour slide.

For each patient with expression targets we pick one tumour slide (label 1). Among several, the choice is
deterministic and recorded: a frozen section (TCGA ``TS``/``BS``/``MS``) before an FFPE diagnostic slide (``DX``),
since the RNA-seq comes from the frozen sample and a DX slide is another block; then the slide with the most tiles
(the largest tissue section), ties broken by ``slide_id``. Tiles are ranked by ``attention_raw`` (pre-softmax;
softmax is monotonic so the order is the same, but raw scores keep resolution where a large bag's softmax
underflows to ties). A slide with fewer than l tiles uses all it has (top and bottom sets then overlap); counts are
recorded per patient.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.cohort.barcodes import FROZEN, preparation_of
from histcode.console import tqdm
from histcode.io.attention import read_attention
from histcode.io.features import feature_shape, read_features

log = logging.getLogger(__name__)


def top_bottom_indices(attention: np.ndarray, top_l: int, bottom_l: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``min(top_l, N)`` highest and ``min(bottom_l, N)`` lowest scores of ``attention`` (N,).

    Ties keep tile order (stable sort), so equal inputs give equal selections.
    """
    a = np.asarray(attention, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("attention is empty: the slide has no tiles")
    if not np.all(np.isfinite(a)):
        raise ValueError("attention holds NaN/inf scores; re-export attention from the MIL model")
    if top_l < 1 or bottom_l < 1:
        raise ValueError(f"top_l and bottom_l must be >= 1, got {top_l}, {bottom_l}")
    top = np.argsort(-a, kind="stable")[: min(top_l, a.size)]
    bottom = np.argsort(a, kind="stable")[: min(bottom_l, a.size)]
    return top, bottom


def top_bottom_embedding(features: np.ndarray, attention: np.ndarray, top_l: int, bottom_l: int) -> np.ndarray:
    """``concat(mean(features[top]), mean(features[bottom]))``: features (N, D), attention (N,) → (2D,) float32."""
    if features.ndim != 2 or features.shape[0] != np.asarray(attention).reshape(-1).shape[0]:
        raise ValueError(f"features {features.shape} and attention {np.shape(attention)} disagree on N tiles")
    top, bottom = top_bottom_indices(attention, top_l, bottom_l)
    return _mean_pair(features, top, bottom)


def _mean_pair(features: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    top_mean = features[top].astype(np.float64).mean(axis=0)  # float64 sums: bags can hold 1e5 tiles
    bottom_mean = features[bottom].astype(np.float64).mean(axis=0)
    return np.concatenate([top_mean, bottom_mean]).astype(np.float32)


def read_bag(features_h5: Path, *, as_stored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) (float32, or the stored dtype with ``as_stored``) and coords (N, 2) of one slide,
    read with ``histcode.io.features.read_features`` (which checks the DESIGN §4 layout)."""
    feats, coords, _ = read_features(features_h5)
    return (feats if as_stored else np.asarray(feats, dtype=np.float32)), np.asarray(coords)


def n_tiles(features_h5: Path) -> int:
    """Number of tiles in a features file without loading it."""
    return feature_shape(features_h5)[0]


@dataclass(frozen=True)
class DEInputs:
    """Stacked DE inputs: ``x`` (P, 2D) for ``patient_ids``; ``table`` records every patient's slide choice."""

    x: np.ndarray
    patient_ids: list[str]
    table: pd.DataFrame

    @property
    def slide_ids(self) -> dict[str, str]:
        ok = self.table[self.table["status"] == "ok"]
        return dict(zip(ok["patient_id"], ok["slide_id"], strict=True))


def _tumour_slides(manifest: pd.DataFrame) -> dict[str, list[str]]:
    """patient → sorted slide ids with label 1 (one pass over the manifest)."""
    tum = manifest[manifest["label"] == 1]
    return {str(p): sorted(g.astype(str)) for p, g in tum.groupby(tum["patient_id"].astype(str))["slide_id"]}


def _candidates(slide_ids: list[str], features_dir: Path, attention_dir: Path) -> list[tuple[str, int]]:
    """(slide_id, n_tiles) of slides with both files, frozen sections first, then most tiles (ties: slide id); one
    slide skips the tile count."""
    present = [s for s in slide_ids if (features_dir / f"{s}.h5").exists() and (attention_dir / f"{s}.h5").exists()]
    if len(present) <= 1:
        return [(s, -1) for s in present]
    out = []
    for sid in present:
        try:
            out.append((sid, n_tiles(features_dir / f"{sid}.h5")))
        except (OSError, KeyError) as exc:
            log.warning("%s: unreadable features file (%s); skipping this slide", features_dir / f"{sid}.h5", exc)
    return sorted(out, key=lambda t: (preparation_of(t[0]) != FROZEN, -t[1], t[0]))


def load_patient_input(features_h5: Path, attention_h5: Path, top_l: int, bottom_l: int) -> tuple[np.ndarray, dict]:
    """One slide's (2D,) input plus a record of tile counts; raises ValueError naming the files on mismatch."""
    feats, coords = read_bag(features_h5, as_stored=True)  # only 2l rows are cast, not the whole bag
    attn_coords, raw, _, _ = read_attention(attention_h5)
    attn = raw.astype(np.float64).reshape(-1)
    if feats.shape[0] != attn.shape[0] or not np.array_equal(np.asarray(coords), np.asarray(attn_coords)):
        raise ValueError(
            f"{attention_h5}: tiles differ from {features_h5} ({attn.shape[0]} vs {feats.shape[0]} tiles or "
            "different coords); re-run train_mil so attention is exported in the features' tile order"
        )
    top, bottom = top_bottom_indices(attn, top_l, bottom_l)
    emb = _mean_pair(feats, top, bottom)
    n = feats.shape[0]
    rec = {"n_tiles": n, "n_top": len(top), "n_bottom": len(bottom),
           "n_overlap": len(np.intersect1d(top, bottom)), "short_bag": n < top_l + bottom_l}
    return emb, rec


def build_de_inputs(
    manifest: pd.DataFrame,
    patients: Sequence[str],
    features_dir: Path,
    attention_dir: Path,
    *,
    top_l: int,
    bottom_l: int,
    progress: bool = True,
) -> DEInputs:
    """DE inputs for ``patients`` from their tumour slides; a patient whose slides all fail is recorded, not fatal.

    manifest: slides.csv (``slide_id, patient_id, label``...). Returns x (P_ok, 2D) in ``patients`` order.
    """
    for col in ("slide_id", "patient_id", "label"):
        if col not in manifest.columns:
            raise ValueError(f"slides manifest lacks column {col!r}; re-run the ingest stage")
    xs, ids, records = [], [], []
    tumour = _tumour_slides(manifest)
    for pid in tqdm(list(patients), desc="DE inputs", disable=not progress, per_item=False):
        cands = _candidates(tumour.get(str(pid), []), features_dir, attention_dir)
        rec: dict = {"patient_id": str(pid), "slide_id": None, "n_candidates": len(cands),
                     "candidates": ";".join(c[0] for c in cands), "status": "failed", "reason": ""}
        if not cands:
            rec["reason"] = (f"no tumour slide (label 1) with both features in {features_dir} and attention in "
                             f"{attention_dir}")
        reasons = []
        for sid, _ in cands:
            try:
                emb, info = load_patient_input(features_dir / f"{sid}.h5", attention_dir / f"{sid}.h5",
                                               top_l, bottom_l)
            except (OSError, KeyError, ValueError) as exc:
                reasons.append(f"{sid}: {exc}")
                continue
            rec.update(info, slide_id=sid, status="ok", reason="; ".join(reasons))
            xs.append(emb)
            ids.append(str(pid))
            break
        else:
            if reasons:
                rec["reason"] = "; ".join(reasons)
        if rec["status"] != "ok":
            log.warning("patient %s excluded from DE: %s", pid, rec["reason"])
        records.append(rec)
    table = pd.DataFrame.from_records(records)
    dim = xs[0].shape[0] if xs else 0
    if xs and any(x.shape[0] != dim for x in xs):
        raise ValueError(f"features in {features_dir} have different dimensions across slides; re-run extract")
    x = np.stack(xs) if xs else np.zeros((0, 0), dtype=np.float32)
    return DEInputs(x=x, patient_ids=ids, table=table)
