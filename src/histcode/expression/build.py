"""Build the DE targets of one cohort: rnaseq.csv → pairs, panel, fold-change tables (DESIGN §4).

Only files of patients that have both a tumour and a normal sample are read. A file that cannot be
read is skipped and named (its patient falls back to another aliquot or is excluded with the reason);
panel genes absent from the files, or missing in some paired sample, are listed in ``panel.csv`` with
their status and left out of the target tables, never silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histcode.atomic import write_csv, write_parquet
from histcode.cohort.barcodes import NORMAL, TUMOUR
from histcode.errors import HistcodeError
from histcode.expression.config import ExpressionConfig
from histcode.expression.genes import map_symbols, read_gene_annotation
from histcode.expression.matrix import load_expression, sample_key
from histcode.expression.pairing import Pairing, pair_samples
from histcode.expression.panel import driver_panel, histcode_overlap
from histcode.expression.targets import Targets, build_targets

log = logging.getLogger(__name__)

OUTPUTS = {"pairs": "pairs.csv", "excluded": "excluded_patients.csv", "log10_fc": "log10_fc.parquet",
           "log2_fc": "log2_fc.parquet", "labels": "de_labels.parquet", "panel": "panel.csv",
           "read_failures": "read_failures.csv"}


class TargetsError(HistcodeError, ValueError):
    """The cohort yields no usable targets (no matched pairs, no panel gene in the files)."""

    def __init__(self, message: str, pairing: Pairing | None = None) -> None:
        super().__init__(message)
        self.pairing = pairing


@dataclass
class DETargets:
    pairing: Pairing
    panel: pd.DataFrame
    targets: Targets
    read_failures: pd.DataFrame
    metrics: dict[str, float]
    overlap: dict[str, Any]


def _needed_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows of patients with both a tumour and a normal sample (the only files worth reading)."""
    types = manifest.groupby("patient_id")["sample_type"].agg(set)
    both = types[types.map(lambda s: TUMOUR in s and NORMAL in s)].index
    return manifest[manifest["patient_id"].isin(both) & manifest["sample_type"].isin([TUMOUR, NORMAL])]


def _gene_status(panel: pd.DataFrame, mapping: pd.DataFrame, values: pd.DataFrame, samples: list[str],
                 files: dict[str, str]) -> pd.DataFrame:
    """Per panel gene: ``ok``, ``ok, missing in k of n ...`` (kept; only those samples' pairs lose the gene,
    ``missing_in`` names their files) or ``not found`` / missing everywhere (left out)."""
    out = panel.merge(mapping[["gene", "gene_id", "n_ids", "rule"]], on="gene", how="left")
    status, missing_in = [], []
    for gid in out["gene_id"]:
        if not isinstance(gid, str):
            status.append("not found in the expression files")
            missing_in.append("")
            continue
        gone = [s for s in samples if pd.isna(values.loc[gid, s])] if samples else []
        missing_in.append(";".join(sorted({files.get(s, s) for s in gone})))
        if not gone:
            status.append("ok")
        elif len(gone) < len(samples):
            status.append(f"ok, missing in {len(gone)} of {len(samples)} paired samples (those pairs excluded "
                          "for this gene)")
        else:
            status.append(f"missing in all {len(samples)} paired samples")
    out["status"] = status
    out["missing_in"] = missing_in
    return out


def make_de_targets(manifest: pd.DataFrame, cfg: ExpressionConfig, *, source: str = "rnaseq.csv",
                    slide_patients: list[str] | None = None) -> DETargets:
    """Everything the ``de_targets`` stage writes, computed in memory (see ``write_de_targets``)."""
    key = sample_key(manifest)
    needed = _needed_rows(manifest)
    data = load_expression(needed, value_column=cfg.value_column, on_error="record", progress=cfg.progress,
                           source=source)
    unreadable = dict(zip(data.failures["sample"].astype(str), data.failures["reason"], strict=True))
    pairing = pair_samples(manifest, unreadable=unreadable, slide_patients=slide_patients or [])
    if pairing.pairs.empty:
        raise TargetsError(f"{source}: no matched tumour/normal RNA-seq pairs among "
                           f"{manifest['patient_id'].nunique()} patients (see excluded_patients.csv); the DE "
                           "targets need patients with both a 'Primary Tumor' and a 'Solid Tissue Normal' "
                           "sample", pairing)
    names = data.gene_names
    if cfg.gene_annotation is not None:
        extra = read_gene_annotation(cfg.gene_annotation)
        names = pd.concat([names, extra[~extra.index.isin(names.index)]]).sort_index()
    samples = [str(s) for s in pd.concat([pairing.pairs["tumour_sample"], pairing.pairs["normal_sample"]])]
    paired = data.values[samples]
    panel = driver_panel(cfg.n_driver_genes, cfg.markers, intogen=cfg.intogen)
    mapping = map_symbols(panel["gene"].tolist(), names, paired)
    files = dict(zip(needed[key].astype(str), needed["path"].astype(str), strict=True))
    panel = _gene_status(panel, mapping, paired, samples, files)
    usable = panel[panel["status"].str.startswith("ok")]
    for gene, where in zip(usable["gene"], usable["missing_in"], strict=True):
        if where:
            log.warning("gene %s missing from %s: kept, those pairs excluded for %s only", gene, where, gene)
    if usable.empty:
        hint = " (HTSeq files carry ids only: set expression.gene_annotation)" if names.empty else ""
        raise TargetsError(f"{source}: none of the {len(panel)} panel genes is in the expression files{hint}")
    not_ok = panel[~panel["status"].str.startswith("ok")]
    if len(not_ok):
        log.warning("%d of %d panel genes left out of the targets (status in panel.csv): %s", len(not_ok),
                    len(panel), ", ".join(f"{g} ({s})" for g, s in zip(not_ok["gene"], not_ok["status"], strict=True)))
    targets = build_targets(paired, pairing.pairs, dict(zip(usable["gene"], usable["gene_id"], strict=True)),
                            pseudo_count=cfg.pseudo_count, log2_threshold=cfg.log2_threshold)
    overlap = histcode_overlap(panel)
    labels = targets.labels.to_numpy(dtype=np.float64, na_value=np.nan)
    metrics = {
        "patients": int(manifest["patient_id"].nunique()),
        "pairs": len(pairing.pairs),
        "excluded_patients": len(pairing.excluded),
        "files_read": int(data.values.shape[1]),
        "files_unreadable": len(data.failures),
        "panel_genes": len(panel),
        "target_genes": int(targets.log10_fc.shape[1]),
        "panel_genes_missing": len(not_ok),
        "histcode_overlap": overlap["n_shared"],
        "de_label_rate": float(np.nanmean(labels)),
        "median_abs_log2_fc": float(np.nanmedian(np.abs(targets.log2_fc.to_numpy()))),
    }
    log.info("DE targets (%s): %d pairs, %d genes, %d patients excluded", key, metrics["pairs"],
             metrics["target_genes"], metrics["excluded_patients"])
    return DETargets(pairing, panel, targets, data.failures, metrics, overlap)


def write_de_targets(result: DETargets, out_dir: str | Path) -> dict[str, Path]:
    """Write every output of DESIGN §4 ``expression/<cohort>/`` atomically; return name → path."""
    out_dir = Path(out_dir)
    paths = {k: out_dir / v for k, v in OUTPUTS.items()}
    write_csv(paths["pairs"], result.pairing.pairs)
    write_csv(paths["excluded"], result.pairing.excluded)
    write_parquet(paths["log10_fc"], result.targets.log10_fc)
    write_parquet(paths["log2_fc"], result.targets.log2_fc)
    write_parquet(paths["labels"], result.targets.labels)
    write_csv(paths["panel"], result.panel)
    write_csv(paths["read_failures"], result.read_failures)
    return paths
