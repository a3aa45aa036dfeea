"""Slides of an external cohort the model has seen: found by the same slide id, patient, or bytes (a slide folder
pointed at the training downloads), also when one of the two files is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

from histcode.cohort.config import IngestConfig
from histcode.cohort.ingest import ingest_cohort
from histcode.cohort.overlap import overlap_summary, seen_in_training
from histcode.config import CohortConfig

QUIET = IngestConfig(progress=False)


def test_an_external_slide_with_a_training_slides_bytes_is_seen(tmp_path: Path, link_slide) -> None:
    """The same file under a CPTAC name and patient (a slide folder pointed at the training downloads): found by its
    content; once that file is gone, by the fingerprints the two ingests recorded."""
    train, ext = tmp_path / "train", tmp_path / "ext"
    link_slide(train / "t1.svs")
    link_slide(train / "t2.svs")
    shutil.copy(train / "t1.svs", _dir(ext) / "copy.svs")
    link_slide(ext / "own.svs")
    for name, d, rows in (("train", train, "T1,t1.svs,P1,tumor\nT2,t2.svs,P2,normal\n"),
                          ("ext", ext, "E1,copy.svs,C3L-1,tumor\nE2,own.svs,C3L-2,normal\n")):
        (d / "m.csv").write_text("slide_id,file_name,patient_id,label\n" + rows)
        cohort = CohortConfig(kind="cptac", source_dir=d, slide_dir=d, slide_sheet=d / "m.csv", default_mpp=0.5)
        ingest_cohort(name, cohort, QUIET, out_dir=d / "out")
    seen = seen_in_training(ext / "out", train / "out")
    assert seen == {"E1": ("file", f"the same file as training slide T1 ({train / 't1.svs'})")}
    assert overlap_summary(seen, 2, cohort="ext", training="train") == (
        "ext: 1 of 2 slide(s) left out of the external metrics, already in training cohort train (1 same file); listed "
        "per slide under seen_in_training in the metrics")
    (train / "t1.svs").unlink()
    assert seen_in_training(ext / "out", train / "out") == seen
    (ext / "out" / "fingerprints.csv").unlink()  # an ingest from before fingerprints: ids and patients only
    assert seen_in_training(ext / "out", train / "out") == {}


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
