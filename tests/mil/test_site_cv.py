"""``mil.cv_groups: site`` end to end through train_mil: test folds of whole tissue source sites, and every place
that names the CV says which (Table 1, its JSON, ``histcode summary``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from histcode.summary import summary_lines

from .conftest import make_cohort

MIL = {"hidden": 8, "attn_hidden": 4, "dropout": 0.0, "lr": 0.003, "max_epochs": 3, "min_epochs": 1, "patience": 2,
       "n_folds": 3, "val_frac": 0.15, "bootstrap": 20, "progress": False, "threads": 1, "workers": 0,
       "baselines": ["clam_sb", "mean"], "encoder_methods": [], "cv_groups": "site"}


def test_site_preserved_cv_runs_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_mlflow) -> None:
    monkeypatch.chdir(tmp_path)
    fresh_mlflow(tmp_path, monkeypatch)
    make_cohort(tmp_path, n_patients=12, cohort="toy")
    manifest_csv = tmp_path / "data/manifests/toy/slides.csv"
    slides = pd.read_csv(manifest_csv)
    # six sites of two patients each (the slide ids keep their names; the site is read from patient_id)
    slides["patient_id"] = slides["patient_id"].map(lambda p: f"TCGA-S{int(p[-4:]) // 2}-{p[-4:]}")
    slides.to_csv(manifest_csv, index=False)
    cohorts = {"toy": {"kind": "gdc", "source_dir": "x", "slide_dir": "x"}}
    params = {"base": {"seed": 1, "train_cohort": "toy", "cohorts": cohorts}, "extract": {"encoders": ["adco"]},
              "mil": MIL}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    from histcode.mil.stage import run_train_mil

    metrics = run_train_mil("params.yaml")
    assert metrics["cv_groups"] == "site"
    split_dir = tmp_path / "data/splits/toy"
    meta = json.loads((split_dir / "splits.json").read_text())
    assert meta["cv_groups"] == "site" and meta["n_sites"] == 6 and sum(meta["fold_patients"]) == 12
    splits = pd.read_csv(split_dir / "splits.csv", dtype={"patient_id": str})
    test = splits[splits["split"] == "test"].set_index("patient_id")["fold"]
    assert test.groupby(test.index.str[5:7]).nunique().max() == 1  # no site in two test folds
    assert "held-out slides of site-preserved 3-fold CV" in (tmp_path / "reports/mil/table1.md").read_text()
    lines = summary_lines(tmp_path / "reports", tmp_path / "figures")
    assert any(line.startswith("tumour vs normal (site-preserved CV, held-out slides") for line in lines)
