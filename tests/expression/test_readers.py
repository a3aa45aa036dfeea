"""STAR / HTSeq FPKM-UQ readers on hand-made files: values, id handling, and every error path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histcode.expression.genes import map_symbols
from histcode.expression.matrix import load_expression, read_expression_matrix
from histcode.expression.readers import ExpressionFileError, read_htseq_fpkm_uq, read_star, strip_version


def test_read_star_skips_summary_rows_and_strips_versions(tmp_path: Path, star_writer, genes) -> None:
    p = star_writer(tmp_path / "a.tsv", [(genes["TP53"], "TP53", 12.5), (genes["CD99"], "CD99", 3.0),
                                         ("ENSG00000002586.20_PAR_Y", "CD99", 0.0)])
    t = read_star(p)
    assert t.index.tolist() == ["ENSG00000141510", "ENSG00000002586", "ENSG00000002586_PAR_Y"]
    assert t["value"].tolist() == [12.5, 3.0, 0.0]
    assert t["gene_name"].tolist() == ["TP53", "CD99", "CD99"]
    tpm = read_star(p, value_column="tpm_unstranded")
    np.testing.assert_allclose(tpm["value"], [6.25, 1.5, 0.0])


def test_read_htseq(tmp_path: Path, htseq_writer, genes) -> None:
    p = htseq_writer(tmp_path / "x.FPKM-UQ.txt.gz", [(genes["TP53"], 7.0), ("ENSG00000121879.4", 0.5)])
    t = read_htseq_fpkm_uq(p)
    assert t.index.tolist() == ["ENSG00000141510", "ENSG00000121879"]
    assert t["value"].tolist() == [7.0, 0.5]
    assert t["gene_name"].isna().all()


def test_strip_version() -> None:
    assert strip_version("ENSG00000141510.18") == "ENSG00000141510"
    assert strip_version("ENSG00000141510") == "ENSG00000141510"
    assert strip_version("ENSG00000002586.20_PAR_Y") == "ENSG00000002586_PAR_Y"
    with pytest.raises(ValueError, match="not an Ensembl gene id"):
        strip_version("TP53")


@pytest.mark.parametrize(("value", "gene_id", "pattern"), [
    ("nan", "ENSG00000141510.18", r"missing or non-numeric value\(s\) '?nan'? at line\(s\) 8"),
    ("1,5", "ENSG00000141510.18", r"missing or non-numeric value\(s\) '1,5' at line\(s\) 8"),
    ("", "ENSG00000141510.18", r"missing or non-numeric value\(s\) .* at line\(s\) 8"),
    ("-1.5", "ENSG00000141510.18", r"negative expression value\(s\) -1.5 at line\(s\) 8"),
    ("1.0", "TP53", r"unknown gene id\(s\) 'TP53' at line\(s\) 8"),
])
def test_star_value_and_id_errors_name_file_and_line(tmp_path: Path, star_writer, value: str, gene_id: str,
                                                     pattern: str) -> None:
    p = star_writer(tmp_path / "bad.tsv", [("ENSG00000121879.6", "PIK3CA", 1.0), (gene_id, "TP53", 2.0)])
    text = p.read_text().splitlines()
    fields = text[7].split("\t")
    fields[-1] = value
    text[7] = "\t".join(fields)
    p.write_text("\n".join(text) + "\n")
    with pytest.raises(ExpressionFileError, match=pattern) as err:
        read_star(p)
    assert str(p) in str(err.value)


def test_star_structure_errors(tmp_path: Path, star_writer, genes) -> None:
    good = star_writer(tmp_path / "g.tsv", [(genes["TP53"], "TP53", 1.0)]).read_text()
    no_comment = tmp_path / "no_comment.tsv"
    no_comment.write_text(good.split("\n", 1)[1])
    with pytest.raises(ExpressionFileError, match=r"line 1 must be the '# gene-model: \.\.\.' comment"):
        read_star(no_comment)
    no_col = tmp_path / "no_col.tsv"
    no_col.write_text(good.replace("fpkm_uq_unstranded", "fpkm_uq"))
    with pytest.raises(ExpressionFileError, match=r"lacks column\(s\) \['fpkm_uq_unstranded'\]"):
        read_star(no_col)
    extra = tmp_path / "extra.tsv"
    extra.write_text(good + f"{genes['KRAS']}\tKRAS\tx\t1\t1\t1\t1\t1\t1\t1\t1\n")
    with pytest.raises(ExpressionFileError, match="malformed STAR counts table"):
        read_star(extra)
    truncated = tmp_path / "trunc.tsv"
    truncated.write_text("\n".join(good.splitlines()[:6]) + "\n")
    with pytest.raises(ExpressionFileError, match="no gene rows after the N_\\* summary rows"):
        read_star(truncated)
    with pytest.raises(ExpressionFileError, match="not a STAR value column"):
        read_star(tmp_path / "g.tsv", value_column="fpkm")
    dup = tmp_path / "dup.tsv"
    star_writer(dup, [(genes["TP53"], "TP53", 1.0), ("ENSG00000141510.17", "TP53", 2.0)])
    with pytest.raises(ExpressionFileError, match=r"'ENSG00000141510' appears more than once \(line\(s\) 7, 8\)"):
        read_star(dup)


def test_htseq_errors(tmp_path: Path, htseq_writer) -> None:
    plain = tmp_path / "plain.FPKM-UQ.txt.gz"
    plain.write_text("ENSG00000141510.4\t1.0\n")
    with pytest.raises(ExpressionFileError, match="cannot read HTSeq FPKM-UQ file"):
        read_htseq_fpkm_uq(plain)
    three = htseq_writer(tmp_path / "three.FPKM-UQ.txt.gz", [("ENSG00000141510.4", 1.0)])
    three.write_bytes(__import__("gzip").compress(b"ENSG00000141510.4\t1.0\t2.0\n"))
    with pytest.raises(ExpressionFileError, match="expected 2 tab-separated columns"):
        read_htseq_fpkm_uq(three)
    neg = htseq_writer(tmp_path / "neg.FPKM-UQ.txt.gz", [("ENSG00000141510.4", 1.0), ("ENSG00000121879.4", -2.0)])
    with pytest.raises(ExpressionFileError, match=r"negative expression value\(s\) -2.0 at line\(s\) 2"):
        read_htseq_fpkm_uq(neg)


def test_matrix_from_manifest_mixed_formats(tmp_path: Path, star_writer, htseq_writer, genes) -> None:
    a = star_writer(tmp_path / "a.tsv", [(genes["TP53"], "TP53", 1.0), (genes["KRAS"], "KRAS", 2.0)])
    b = htseq_writer(tmp_path / "b.FPKM-UQ.txt.gz", [(genes["TP53"], 3.0), (genes["PTEN"], 4.0)])
    manifest = pd.DataFrame({"sample_id": ["S-01A", "S-11A"], "path": [str(a), str(b)],
                             "format": ["star", "htseq_fpkm_uq"], "file_id": ["fa", "fb"]})
    m = read_expression_matrix(manifest)
    assert m.columns.tolist() == ["fa", "fb"]
    assert m.index.tolist() == ["ENSG00000133703", "ENSG00000141510", "ENSG00000171862"]  # sorted union
    np.testing.assert_array_equal(m.to_numpy(), [[2.0, np.nan], [1.0, 3.0], [np.nan, 4.0]])
    csv = tmp_path / "rnaseq.csv"
    manifest.to_csv(csv, index=False)
    pd.testing.assert_frame_equal(read_expression_matrix(csv), m)


def test_matrix_records_bad_files_when_asked(tmp_path: Path, star_writer, genes) -> None:
    a = star_writer(tmp_path / "a.tsv", [(genes["TP53"], "TP53", 1.0)])
    bad = tmp_path / "bad.tsv"
    bad.write_text("garbage\n")
    manifest = pd.DataFrame({"sample_id": ["S1", "S2"], "path": [str(a), str(bad)], "format": ["star", "star"]})
    with pytest.raises(ExpressionFileError, match=r"bad\.tsv"):
        load_expression(manifest)
    data = load_expression(manifest, on_error="record")
    assert data.values.columns.tolist() == ["S1"]
    assert data.failures["sample"].tolist() == ["S2"] and "gene-model" in data.failures["reason"].iloc[0]


def test_duplicate_names_map_deterministically(tmp_path: Path, star_writer, genes) -> None:
    rows = [(genes["CD99"], "CD99", 5.0), ("ENSG00000002586.20_PAR_Y", "CD99", 9.0),
            ("ENSG00000200001.1", "Y_RNA", 1.0), ("ENSG00000200002.1", "Y_RNA", 4.0),
            ("ENSG00000200003.1", "Y_RNA", 4.0), (genes["TP53"], "TP53", 2.0)]
    a = star_writer(tmp_path / "a.tsv", rows)
    manifest = pd.DataFrame({"sample_id": ["S1"], "path": [str(a)], "format": ["star"]})
    data = load_expression(manifest)
    m = map_symbols(["CD99", "Y_RNA", "TP53", "NOPE", "ENSG00000141510.18"], data.gene_names, data.values)
    got = dict(zip(m["gene"], m["gene_id"], strict=True))
    assert got["CD99"] == "ENSG00000002586"  # PAR_Y copy never chosen, even when higher
    assert got["Y_RNA"] == "ENSG00000200002"  # highest mean, tie → smallest id
    assert got["TP53"] == "ENSG00000141510" and got["ENSG00000141510.18"] == "ENSG00000141510"
    assert pd.isna(got["NOPE"])
    assert m.set_index("gene").loc["Y_RNA", "n_ids"] == 3
