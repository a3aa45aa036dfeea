"""Held-out evidence attached to registered model versions, so the promotion gate can compare versions.

Two kinds:
- ``binary``: one row per held-out slide, columns ``id, label, prob`` (metric: ROC-AUC);
- ``per_unit``: one row per unit (e.g. gene), columns ``id, score`` (metric: mean score, e.g. held-out
  Pearson per gene);
- ``de``: held-out DE predictions, one row per (patient, gene), columns ``id`` (``patient|gene``),
  ``patient_id, gene, fold, y_true, y_pred`` (log10(fc+1)); the gate recomputes per-gene significance
  against random and resamples patients (``histcode.registry.gate.decide_de``).
The table is logged as an artifact of the version's training run and the version is tagged with where it is
and its sha256. Evidence is written once per version and never replaced (a later, weaker experiment must not
rewrite the record the gate promoted on); ``load_evidence`` refuses a table whose digest changed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import pandas as pd

from histcode import tracking
from histcode.registry.models import RegistryError

Kind = Literal["binary", "per_unit", "de"]
COLUMNS: dict[str, tuple[str, ...]] = {"binary": ("id", "label", "prob"), "per_unit": ("id", "score"),
                                       "de": ("id", "patient_id", "gene", "fold", "y_true", "y_pred")}


def _check(df: pd.DataFrame, kind: str, where: str) -> pd.DataFrame:
    if kind not in COLUMNS:
        raise RegistryError(f"{where}: unknown evidence kind {kind!r}; valid: {sorted(COLUMNS)}")
    missing = [c for c in COLUMNS[kind] if c not in df.columns]
    if missing:
        raise RegistryError(f"{where}: evidence of kind {kind!r} lacks columns {missing}")
    out = df.loc[:, list(COLUMNS[kind])].copy()
    out["id"] = out["id"].astype(str)
    if kind == "de":
        out["patient_id"] = out["patient_id"].astype(str)
        out["gene"] = out["gene"].astype(str)
    if out["id"].duplicated().any():
        raise RegistryError(f"{where}: duplicated ids in evidence, e.g. {out['id'][out['id'].duplicated()].iloc[0]}")
    if out.drop(columns="id").isna().any().any():
        raise RegistryError(f"{where}: evidence contains NaN values")
    return out


class EvidenceExists(RegistryError):
    """The version already has evidence: it is immutable."""


def has_evidence(name: str, version: str | int) -> bool:
    return "evidence.kind" in tracking.client().get_model_version(name, str(version)).tags


def attach_evidence(name: str, version: str | int, df: pd.DataFrame, *, kind: Kind,
                    source: str | None = None) -> None:
    """Log ``df`` as held-out evidence for ``name`` version ``version`` (once: ``EvidenceExists`` after).

    ``source`` names where the numbers come from when it is not the version itself (e.g. the MIL version
    whose held-out predictions judge an encoder)."""
    from histcode.registry.safe_model import sha256

    client = tracking.client()
    mv = client.get_model_version(name, str(version))
    if "evidence.kind" in mv.tags:
        raise EvidenceExists(f"{name} v{version} already has evidence ({mv.tags.get('evidence.source', 'itself')}); "
                             "evidence is written once per version and never replaced")
    table = _check(df, kind, f"{name} v{version}")
    artifact_dir = f"evidence/{name}-v{version}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "evidence.csv"
        table.to_csv(path, index=False)
        client.log_artifact(mv.run_id, str(path), artifact_path=artifact_dir)
        digest = sha256(path)
    client.set_model_version_tag(name, str(version), "evidence.sha256", digest)
    client.set_model_version_tag(name, str(version), "evidence.source", source or f"{name}/{version}")
    client.set_model_version_tag(name, str(version), "evidence.kind", kind)
    client.set_model_version_tag(name, str(version), "evidence.artifact", f"{artifact_dir}/evidence.csv")
    client.set_model_version_tag(name, str(version), "evidence.n", str(len(table)))


def load_evidence(name: str, version: str | int) -> tuple[pd.DataFrame, str]:
    """The evidence table and its kind for a version; ``RegistryError`` if none was attached."""
    from histcode.registry.safe_model import sha256

    client = tracking.client()
    mv = client.get_model_version(name, str(version))
    kind = mv.tags.get("evidence.kind")
    artifact = mv.tags.get("evidence.artifact")
    if not kind or not artifact:
        raise RegistryError(
            f"{name} v{version} has no held-out evidence attached; retrain it with `dvc repro` "
            "(training stages attach evidence when they register a model)."
        )
    with tempfile.TemporaryDirectory() as tmp:
        local = tracking.download_artifacts(run_id=mv.run_id, artifact_path=artifact, dst_path=tmp)
        want = mv.tags.get("evidence.sha256")
        if want and sha256(local) != want:
            raise RegistryError(f"{name} v{version}: evidence {artifact} was modified after it was attached "
                                "(sha256 mismatch); refusing to compare on it")
        df = pd.read_csv(local, dtype={"id": str, "patient_id": str, "gene": str})
    return _check(df, kind, f"{name} v{version}"), kind
