"""One file under two manifest rows: a copy of one patient's slide is left out once, one image under two patients
or labels is left out entirely (it would sit on both sides of a patient-level split), and slides that share only
their fingerprint (one tile rewritten inside) are not taken for copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.cohort import duplicates
from histcode.cohort.config import IngestConfig
from histcode.cohort.duplicates import identical_groups
from histcode.cohort.fingerprint import fingerprint
from histcode.cohort.ingest import ingest_cohort
from histcode.config import CohortConfig

QUIET = IngestConfig(progress=False)
STAR = ".rna_seq.augmented_star_gene_counts.tsv"
STAR_TEXT = "\n".join([
    "# gene-model: GENCODE v36",
    "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\ttpm_unstranded\tfpkm_unstranded\t"
    "fpkm_uq_unstranded",
    "ENSG00000141510.18\tTP53\tprotein_coding\t5\t2\t3\t1.0\t2.0\t{}"]) + "\n"


def _ingest(tmp_path: Path, rows: list[list[str]], gdc_sheet, **rna) -> tuple[pd.DataFrame, pd.DataFrame]:
    cohort = CohortConfig(kind="gdc", source_dir=tmp_path, slide_dir=tmp_path / "slides", slide_sheet=gdc_sheet(rows),
                          **rna)
    res = ingest_cohort("c", cohort, QUIET, out_dir=tmp_path / "out")
    return res.slides, res.failures


def test_a_second_download_of_one_slide_is_left_out_once(tmp_path: Path, gdc_sheet, sheet_row, link_slide) -> None:
    first, again, normal = sheet_row("AA-0001", "01"), sheet_row("AA-0001", "01", "B"), sheet_row("AA-0001", "11")
    link_slide(tmp_path / "slides" / first[1])
    shutil.copy(tmp_path / "slides" / first[1], tmp_path / "slides" / again[1])  # the same bytes, another name
    link_slide(tmp_path / "slides" / normal[1])
    slides, failures = _ingest(tmp_path, [first, again, normal], gdc_sheet)
    assert sorted(slides["sample_type"]) == ["Primary Tumor", "Solid Tissue Normal"]
    assert Path(slides["path"].iloc[0]).name == first[1]  # the first row of the sheet is the one kept
    (row,) = failures.itertuples()
    assert (row.kind, row.row, row.file) == ("duplicate_file", 3, again[1])
    assert f"the same bytes as {first[1]} (row 2), kept for TCGA-AA-0001 / Primary Tumor" in row.reason
    assert "remove the duplicate row or file" in row.reason
    # fingerprints.csv lists the kept slides only, with the prints read for the check
    prints = pd.read_csv(tmp_path / "out" / "fingerprints.csv")
    assert sorted(prints["path"]) == sorted(slides["path"])


def test_one_image_under_two_patients_or_labels_leaves_every_copy_out(tmp_path: Path, gdc_sheet, sheet_row,
                                                                     link_slide, same_slide) -> None:
    a, b, c = sheet_row("AA-0001", "01"), sheet_row("AA-0002", "01"), sheet_row("AA-0002", "11")
    d = sheet_row("AA-0003", "01")
    for r in (a, b, c):
        same_slide(tmp_path / "slides" / r[1])  # links to one file: its bytes are not even read twice
    link_slide(tmp_path / "slides" / d[1])
    slides, failures = _ingest(tmp_path, [a, b, c, d], gdc_sheet)
    assert slides["patient_id"].tolist() == ["TCGA-AA-0003"]
    assert failures["kind"].tolist() == ["duplicate_conflict"] * 3 and failures["row"].tolist() == [2, 3, 4]
    reason = failures["reason"].iloc[0]
    assert reason.startswith(f"{a[1]} (TCGA-AA-0001 / Primary Tumor): the same bytes as {b[1]} (row 3, TCGA-AA-0002 / "
                             f"Primary Tumor); {c[1]} (row 4, TCGA-AA-0002 / Solid Tissue Normal)")
    assert "all 3 copies left out; correct the sheet rows" in reason


def test_slides_that_differ_inside_are_not_copies(tmp_path: Path, monkeypatch) -> None:
    """Same size, same first and last MiB (one tile rewritten in the middle): the full hash tells them apart."""
    a, b = tmp_path / "a.svs", tmp_path / "b.svs"
    data = bytearray(np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes())
    a.write_bytes(bytes(data))
    data[len(data) // 2] ^= 0xFF
    b.write_bytes(bytes(data))
    assert fingerprint(a) == fingerprint(b)
    assert identical_groups([a, b]) == []
    shutil.copy(a, tmp_path / "c.svs")
    hashed = []
    real = duplicates.full_digest
    monkeypatch.setattr(duplicates, "full_digest", lambda p: hashed.append(Path(p).name) or real(p))
    assert identical_groups([a, b, tmp_path / "c.svs", tmp_path / "missing.svs"]) == [[0, 2]]
    assert sorted(hashed) == ["a.svs", "b.svs", "c.svs"]
    (tmp_path / "d.svs").symlink_to(a)
    hashed.clear()
    assert identical_groups([tmp_path / "d.svs", a]) == [[0, 1]] and hashed == []  # one file: nothing to hash


def test_one_count_file_for_tumour_and_normal_is_left_out(tmp_path: Path, gdc_sheet, sheet_row, link_slide) -> None:
    """A tumour and a normal STAR file with the same bytes would give a fold change of 1 for every gene."""
    srow = sheet_row("AA-0001", "01")
    link_slide(tmp_path / "slides" / srow[1])
    header = ["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID", "Sample Type"]
    lines = ["\t".join(header)]
    for fid, patient, code, st, value in (("r1", "AA-0001", "01A", "Primary Tumor", 3.0),
                                          ("r2", "AA-0001", "11A", "Solid Tissue Normal", 3.0),
                                          ("r3", "AA-0002", "01A", "Primary Tumor", 4.0),
                                          ("r4", "AA-0002", "11A", "Solid Tissue Normal", 5.0)):
        path = tmp_path / "rna" / fid / f"u{fid}{STAR}"
        path.parent.mkdir(parents=True)
        path.write_text(STAR_TEXT.format(value))
        lines.append("\t".join([fid, path.name, "Transcriptome Profiling", "Gene Expression Quantification",
                                "TCGA-BRCA", f"TCGA-{patient}", f"TCGA-{patient}-{code}", st]))
    (tmp_path / "rna.tsv").write_text("\n".join(lines) + "\n")
    _, failures = _ingest(tmp_path, [srow], gdc_sheet, rna_dir=tmp_path / "rna", rna_sheet=tmp_path / "rna.tsv")
    rna = pd.read_csv(tmp_path / "out" / "rnaseq.csv")
    assert rna["file_id"].tolist() == ["r3", "r4"]
    assert failures.loc[failures["table"] == "rnaseq", "kind"].tolist() == ["duplicate_conflict"] * 2


def test_a_slide_folder_with_one_name_twice_keeps_going(tmp_path: Path, link_slide) -> None:
    """gdc-client's ``<File ID>/<File Name>`` layout downloaded twice: one copy kept; two files of one name with other
    bytes are both left out (which is the slide?); before, either stopped the whole cohort at validation."""
    d = tmp_path / "slides"
    link_slide(d / "u1" / "TCGA-AB-0001-01A-01-TS1.aaa.svs")
    shutil.copy(d / "u1" / "TCGA-AB-0001-01A-01-TS1.aaa.svs", _dir(d / "u2"))
    link_slide(d / "u3" / "TCGA-AB-0001-11A-01-TS1.bbb.svs")
    link_slide(d / "u4" / "TCGA-AB-0001-11A-01-TS1.bbb.svs")  # a copy with bytes of its own: another scan
    link_slide(d / "u5" / "TCGA-AB-0002-01A-01-TS1.ccc.svs")
    cohort = CohortConfig(kind="barcode", source_dir=d, slide_dir=d)
    res = ingest_cohort("b", cohort, QUIET, out_dir=tmp_path / "out")
    assert [Path(p).parent.name for p in res.slides["path"]] == ["u1", "u5"]
    kinds = res.failures.set_index("file")["kind"].to_dict()
    assert kinds == {"u2/TCGA-AB-0001-01A-01-TS1.aaa.svs": "duplicate_file",
                     "u3/TCGA-AB-0001-11A-01-TS1.bbb.svs": "duplicate_slide_id",
                     "u4/TCGA-AB-0001-11A-01-TS1.bbb.svs": "duplicate_slide_id"}
    reasons = res.failures.set_index("file")["reason"]
    assert "the same bytes as u1/TCGA-AB-0001-01A-01-TS1.aaa.svs (row 1)" in reasons.iloc[0]
    assert "2 files named TCGA-AB-0001-11A-01-TS1.bbb with other bytes" in reasons.iloc[1]


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
