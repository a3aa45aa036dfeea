"""Held-out evidence attached to registered model versions, so the promotion gate can compare versions.

Two kinds:
- ``binary``: one row per held-out slide, columns ``id, label, prob`` (metric: ROC-AUC);
- ``per_unit``: one row per unit (e.g. gene), columns ``id, score`` (metric: mean score, e.g. held-out
  Pearson per gene);
- ``de``: held-out DE predictions, one row per (patient, gene), columns ``id`` (``patient|gene``),
  ``patient_id, gene, fold, y_true, y_pred`` (log10(fc+1)); the gate recomputes per-gene significance
  against random and resamples patients (``histcode.registry.gate.decide_de``).
A ``de`` version may carry a second table, its method's held-out correlations re-cross-validated on shuffled
targets (columns ``shuffle, gene, pearson_r``, ``histcode.genes.null``), the null of the gate's ``cv_null``
per-gene test; it is attached, digested and checked with the evidence.
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
from histcode.registry.names import DE, ENCODER, MIL

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


NULL_COLUMNS = ("shuffle", "gene", "pearson_r")


def _check_null(df: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in NULL_COLUMNS if c not in df.columns]
    if missing:
        raise RegistryError(f"{where}: CV null lacks columns {missing}")
    out = df.loc[:, list(NULL_COLUMNS)].copy()
    out["shuffle"] = out["shuffle"].astype(int)
    out["gene"] = out["gene"].astype(str)
    if out.duplicated(["shuffle", "gene"]).any():
        raise RegistryError(f"{where}: CV null has duplicated (shuffle, gene) rows")
    return out


def attach_evidence(name: str, version: str | int, df: pd.DataFrame, *, kind: Kind,
                    source: str | None = None, null: pd.DataFrame | None = None) -> None:
    """Log ``df`` as held-out evidence for ``name`` version ``version`` (once: ``EvidenceExists`` after).

    ``source`` names where the numbers come from when it is not the version itself (e.g. the MIL version
    whose held-out predictions judge an encoder); ``null``: the CV null of ``de`` evidence (None or empty:
    none)."""
    from histcode.registry.safe_model import sha256

    client = tracking.client()
    mv = client.get_model_version(name, str(version))
    if "evidence.kind" in mv.tags:
        raise EvidenceExists(f"{name} v{version} already has evidence ({mv.tags.get('evidence.source', 'itself')}); "
                             "evidence is written once per version and never replaced")
    table = _check(df, kind, f"{name} v{version}")
    null_table = _check_null(null, f"{name} v{version}") if null is not None and len(null) else None
    artifact_dir = f"evidence/{name}-v{version}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "evidence.csv"
        table.to_csv(path, index=False)
        client.log_artifact(mv.run_id, str(path), artifact_path=artifact_dir)
        digest = sha256(path)
        if null_table is not None:
            null_path = Path(tmp) / "cv_null.csv"
            null_table.to_csv(null_path, index=False)
            client.log_artifact(mv.run_id, str(null_path), artifact_path=artifact_dir)
            client.set_model_version_tag(name, str(version), "evidence.null_sha256", sha256(null_path))
            client.set_model_version_tag(name, str(version), "evidence.null_artifact", f"{artifact_dir}/cv_null.csv")
    client.set_model_version_tag(name, str(version), "evidence.sha256", digest)
    client.set_model_version_tag(name, str(version), "evidence.source", source or f"{name}/{version}")
    client.set_model_version_tag(name, str(version), "evidence.kind", kind)
    client.set_model_version_tag(name, str(version), "evidence.artifact", f"{artifact_dir}/evidence.csv")
    client.set_model_version_tag(name, str(version), "evidence.n", str(len(table)))


# who attaches a model's evidence, for the message of a version that has none (e.g. after `dvc repro pretrain`)
EVIDENCE_FROM = {
    ENCODER: "the encoder is judged by the first train_mil on its features (held-out tumour diagnosis); ",
    MIL: "train_mil attaches its cross-validated predictions when it registers a model; ",
    DE: "train_de attaches its cross-validated per-gene predictions when it registers a model; ",
}


def load_evidence(name: str, version: str | int) -> tuple[pd.DataFrame, str]:
    """The evidence table and its kind for a version; ``RegistryError`` if none was attached."""
    from histcode.registry.safe_model import sha256

    client = tracking.client()
    mv = client.get_model_version(name, str(version))
    kind = mv.tags.get("evidence.kind")
    artifact = mv.tags.get("evidence.artifact")
    if not kind or not artifact:
        raise RegistryError(f"{name} v{version} has no held-out evidence attached yet: {EVIDENCE_FROM.get(name, '')}"
                            "run `dvc repro` (the rest of the pipeline), then `make promote`.")
    with tempfile.TemporaryDirectory() as tmp:
        local = tracking.download_artifacts(run_id=mv.run_id, artifact_path=artifact, dst_path=tmp)
        want = mv.tags.get("evidence.sha256")
        if want and sha256(local) != want:
            raise RegistryError(f"{name} v{version}: evidence {artifact} was modified after it was attached "
                                "(sha256 mismatch); refusing to compare on it")
        df = pd.read_csv(local, dtype={"id": str, "patient_id": str, "gene": str})
    return _check(df, kind, f"{name} v{version}"), kind


def load_null(name: str, version: str | int) -> pd.DataFrame | None:
    """The version's CV null (shuffle, gene, pearson_r), None when it has none; digest-checked like the evidence."""
    from histcode.registry.safe_model import sha256

    client = tracking.client()
    mv = client.get_model_version(name, str(version))
    artifact = mv.tags.get("evidence.null_artifact")
    if not artifact:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = tracking.download_artifacts(run_id=mv.run_id, artifact_path=artifact, dst_path=tmp)
        if sha256(local) != mv.tags.get("evidence.null_sha256"):
            raise RegistryError(f"{name} v{version}: CV null {artifact} was modified after it was attached "
                                "(sha256 mismatch); refusing to compare on it")
        df = pd.read_csv(local, dtype={"gene": str})
    return _check_null(df, f"{name} v{version}")
