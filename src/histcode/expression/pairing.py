"""Matched tumour/normal RNA-seq pairs per patient, chosen deterministically and recorded.

Rule among several aliquot files of one sample type: the lowest sample id (vial A before B), then the
smallest file key (GDC File ID); files that could not be read are skipped (and named in the reason).
Patients without a usable normal (most TCGA patients) or tumour are excluded and listed with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from histcode.cohort.barcodes import NORMAL, TUMOUR
from histcode.expression.matrix import sample_key

PAIR_COLUMNS = ["patient_id", "tumour_sample", "tumour_sample_id", "normal_sample", "normal_sample_id",
                "n_tumour_files", "n_normal_files", "reason"]


@dataclass
class Pairing:
    """``pairs``: one row per matched patient (PAIR_COLUMNS); ``excluded``: patient_id, reason."""

    pairs: pd.DataFrame
    excluded: pd.DataFrame


def _pick(cands: pd.DataFrame, key: str, unreadable: Mapping[str, str], what: str) -> tuple[pd.Series | None, str]:
    ordered = cands.sort_values(["sample_id", key], kind="mergesort")
    usable = ordered[~ordered[key].astype(str).isin(unreadable)]
    skipped = [str(k) for k in ordered[key] if str(k) in unreadable]
    note = f"; skipped unreadable {what} file(s) {skipped}" if skipped else ""
    if usable.empty:
        return None, note
    chosen = usable.iloc[0]
    if len(ordered) == 1:
        return chosen, f"one {what} file" + note
    return chosen, (f"{len(ordered)} {what} files ({', '.join(sorted(set(map(str, ordered['sample_id']))))}): chose "
                    f"lowest sample id then smallest {key}" + note)


def pair_samples(manifest: pd.DataFrame, *, unreadable: Mapping[str, str] | None = None,
                 slide_patients: Iterable[str] = ()) -> Pairing:
    """Pair ``rnaseq.csv`` rows (sample_type 'Primary Tumor' / 'Solid Tissue Normal') per patient.

    ``unreadable``: sample key → reason, for files that failed to read (they are never chosen).
    ``slide_patients``: patients of ``slides.csv``; those without any RNA-seq row are listed as excluded too.
    """
    unreadable = dict(unreadable or {})
    key = sample_key(manifest)
    pairs, excluded = [], []
    for patient, group in sorted(manifest.groupby("patient_id", sort=True), key=lambda kv: str(kv[0])):
        tum = group[group["sample_type"] == TUMOUR]
        nor = group[group["sample_type"] == NORMAL]
        if tum.empty or nor.empty:
            missing = "Solid Tissue Normal" if nor.empty else "Primary Tumor"
            excluded.append({"patient_id": patient, "reason": f"no {missing} RNA-seq sample"})
            continue
        t, t_note = _pick(tum, key, unreadable, "tumour")
        n, n_note = _pick(nor, key, unreadable, "normal")
        if t is None or n is None:
            bad = [str(k) for k in group[key] if str(k) in unreadable]
            reasons = "; ".join(f"{k}: {unreadable[k]}" for k in bad)
            excluded.append({"patient_id": patient,
                             "reason": f"no readable {'tumour' if t is None else 'normal'} RNA-seq file ({reasons})"})
            continue
        pairs.append({"patient_id": patient, "tumour_sample": t[key], "tumour_sample_id": t["sample_id"],
                      "normal_sample": n[key], "normal_sample_id": n["sample_id"], "n_tumour_files": len(tum),
                      "n_normal_files": len(nor), "reason": f"tumour: {t_note}; normal: {n_note}"})
    with_rna = set(manifest["patient_id"].astype(str))
    excluded += [{"patient_id": p, "reason": "slides but no RNA-seq sample in rnaseq.csv"}
                 for p in sorted(set(map(str, slide_patients)) - with_rna)]
    return Pairing(pd.DataFrame(pairs, columns=PAIR_COLUMNS),
                   pd.DataFrame(excluded, columns=["patient_id", "reason"]).sort_values("patient_id", kind="stable")
                   .reset_index(drop=True))
