"""The training cohort's RNA-seq: simulate every sample's STAR table, then write the GDC layout
(``rnaseq/<File ID>/<uuid>.rna_seq.augmented_star_gene_counts.tsv`` + RNA sample sheet)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.atomic import write_csv
from histcode.synth import expression as ex
from histcode.synth.genes import gene_table
from histcode.synth.plan import COHORTS, PatientPlan, make_uuid
from histcode.synth.star import STAR_SUFFIX, sample_sheet, star_table, write_star

PROJECT = "TCGA-BRCA"


@dataclass(frozen=True)
class RnaCohort:
    """Genes, planted effects, planted patients × genes log2 FC, one (sheet row, STAR table) per sample."""

    genes: pd.DataFrame
    effects: pd.DataFrame
    planted: pd.DataFrame
    samples: list[tuple[dict[str, object], pd.DataFrame]]


def simulate_rnaseq(seed: int, n_background: int, patients: list[PatientPlan]) -> RnaCohort:
    """Tumour and (where the patient has one) normal samples of the training-cohort patients."""
    rng = np.random.default_rng([seed, 7])
    genes = gene_table(n_background, rng)
    effects = ex.gene_effects(genes, rng)
    tcga = [p for p in patients if p.cohort == COHORTS[0]]
    fc = ex.planted_log2fc(tcga, effects, rng)
    base = genes["base_log2_tpm"].to_numpy()
    length = genes["length_bp"].to_numpy(float)
    samples = []
    for p in tcga:
        offset = rng.normal(0, ex.PATIENT_SD, len(base))
        for tumour in (True, False):
            if not tumour and not p.has_normal_rna:
                continue
            planted = fc.loc[p.patient_id].to_numpy() if tumour else None
            log2, composition = ex.sample_log2_expr(base, offset, planted, rng)
            lib = float(rng.uniform(2e7, 6e7))
            table = star_table(genes, ex.simulate_counts(log2, length, lib, rng, composition), rng)
            file_id, name = make_uuid(rng), f"{make_uuid(rng)}{STAR_SUFFIX}"
            meta = {
                "File ID": file_id,
                "File Name": name,
                "Data Category": "Transcriptome Profiling",
                "Data Type": "Gene Expression Quantification",
                "Project ID": PROJECT,
                "Case ID": p.patient_id,
                "Sample ID": f"{p.patient_id}-{'01A' if tumour else '11A'}",
                "Sample Type": "Primary Tumor" if tumour else "Solid Tissue Normal",
                "library_size": lib,
            }
            samples.append((meta, table))
    return RnaCohort(genes, effects, fc, samples)


def write_rnaseq(rna: RnaCohort, cohort_dir: Path, gt_dir: Path) -> None:
    """STAR files + RNA sample sheet under ``cohort_dir``; planted effects and sample list to ``gt_dir``."""
    sheet, truth_rows = [], []
    for meta, table in rna.samples:
        write_star(cohort_dir / "rnaseq" / str(meta["File ID"]) / str(meta["File Name"]), table)
        sheet.append({k: v for k, v in meta.items() if k != "library_size"})
        truth_rows.append(
            {
                "sample_id": meta["Sample ID"],
                "patient_id": meta["Case ID"],
                "sample_type": meta["Sample Type"],
                "file_id": meta["File ID"],
                "file_name": meta["File Name"],
                "library_size": meta["library_size"],
                "total_counts": int(table["unstranded"].iloc[4:].sum()),
            }
        )
    write_csv(cohort_dir / "gdc_sample_sheet.rnaseq.tsv", sample_sheet(sheet), sep="\t")
    write_csv(gt_dir / "rna_samples.csv", pd.DataFrame(truth_rows))
    write_csv(gt_dir / "gene_effects.csv", rna.effects)
    write_csv(gt_dir / "genes.csv", rna.genes)
    write_csv(gt_dir / "planted_log2fc.csv", rna.planted.reset_index(), float_format="%.5f")
