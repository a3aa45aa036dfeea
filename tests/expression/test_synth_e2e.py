"""The tiny synthetic cohort (histcode.synth) ingests cleanly and its fold changes recover the planted ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histcode.cohort.config import IngestConfig
from histcode.cohort.ingest import ingest_cohort
from histcode.config import CohortConfig
from histcode.expression.build import make_de_targets
from histcode.expression.config import ExpressionConfig


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from histcode.synth.config import SynthConfig
    from histcode.synth.generate import generate

    root = tmp_path_factory.mktemp("synth")
    generate(SynthConfig.tiny(), root)
    return root


def test_tiny_cohort_ingests_and_builds_targets(synth_root: Path, tmp_path: Path) -> None:
    tc = synth_root / "tcga_synth"
    cohort = CohortConfig(kind="gdc", source_dir=tc, slide_dir=tc / "slides",
                          slide_sheet=tc / "gdc_sample_sheet.slides.tsv", rna_dir=tc / "rnaseq",
                          rna_sheet=tc / "gdc_sample_sheet.rnaseq.tsv")
    res = ingest_cohort("tcga_synth", cohort, IngestConfig(progress=False), out_dir=tmp_path / "m")
    truth = pd.read_csv(synth_root / "ground_truth" / "slides.csv")
    truth = truth[truth["cohort"] == "tcga_synth"] if "cohort" in truth.columns else truth
    assert res.failures.empty
    assert res.counts["slides"] == len(truth) and res.counts["slides_tumour"] == res.counts["slides_normal"]

    samples = pd.read_csv(synth_root / "ground_truth" / "rna_samples.csv")
    assert sorted(res.rnaseq["file_id"]) == sorted(samples["file_id"])
    patients = pd.read_csv(synth_root / "ground_truth" / "patients.csv")
    patients = patients[patients["cohort"] == "tcga_synth"]

    out = make_de_targets(res.rnaseq, ExpressionConfig(progress=False))
    assert sorted(out.pairing.pairs["patient_id"]) == sorted(patients.loc[patients["has_normal_rna"], "patient_id"])
    assert sorted(out.pairing.excluded["patient_id"]) == sorted(
        patients.loc[~patients["has_normal_rna"], "patient_id"])
    assert out.metrics["panel_genes_missing"] == 0 and out.metrics["target_genes"] == 205

    planted = pd.read_csv(synth_root / "ground_truth" / "planted_log2fc.csv").set_index("patient_id")
    obs = out.targets.log2_fc
    shared = [g for g in obs.columns if g in planted.columns]
    assert len(shared) >= 200
    r = np.corrcoef(obs[shared].to_numpy().ravel(), planted.loc[obs.index, shared].to_numpy().ravel())[0, 1]
    assert r > 0.8, f"observed vs planted log2 fold change correlation {r:.3f}"
