"""Content fingerprints: a rewritten file changes its manifest folder, so DVC reruns what reads it."""

import shutil
from pathlib import Path

import pandas as pd

from histcode.cohort.fingerprint import fingerprint, fingerprint_table

SLIDE = Path(__file__).resolve().parents[1] / "data" / "CMU-1-Small-Region.svs"


def test_fingerprint_sees_content_not_path(tmp_path: Path):
    a, b = tmp_path / "a.svs", tmp_path / "b.svs"
    shutil.copy(SLIDE, a)
    shutil.copy(SLIDE, b)
    size, digest = fingerprint(a)
    assert size == SLIDE.stat().st_size and fingerprint(b) == (size, digest)
    data = bytearray(b.read_bytes())
    data[-10] ^= 0xFF  # one byte in the tail (tile data of the last level written)
    b.write_bytes(bytes(data))
    assert fingerprint(b)[1] != digest
    data[-10] ^= 0xFF
    data[100] ^= 0xFF  # one byte in the header
    b.write_bytes(bytes(data))
    assert fingerprint(b)[1] != digest


def test_fingerprint_of_small_file_hashes_it_whole(tmp_path: Path):
    f = tmp_path / "x.tsv"
    f.write_bytes(b"gene_id\tx\n")
    s1 = fingerprint(f, chunk=4)
    f.write_bytes(b"gene_id\ty\n")
    assert fingerprint(f, chunk=4) != s1 and s1[0] == 10


def test_fingerprint_table_lists_existing_files_only(tmp_path: Path):
    shutil.copy(SLIDE, tmp_path / "s.svs")
    slides = pd.DataFrame({"slide_id": ["s", "gone"], "path": [str(tmp_path / "s.svs"), str(tmp_path / "gone")]})
    df = fingerprint_table({"slides": (slides, "slide_id")})
    assert df[["table", "id"]].values.tolist() == [["slides", "s"]]
    assert df["fingerprint"].str.len().eq(32).all()
