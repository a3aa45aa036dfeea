"""The one slides.csv reader and mpp parser: file order or sorted, relative-path fallback, labelled checks, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from histcode.io.manifest import LABELLED_COLUMNS, read_manifest, read_manifest_rows, valid_mpp


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("cell", "want"), [("0.25", 0.25), (0.5, 0.5), ("", None), (None, None), ("nan", None),
                                            ("inf", None), ("-1", None), ("0", None), ("x", None)])
def test_valid_mpp(cell: object, want: float | None) -> None:
    assert valid_mpp(cell) == want


def test_relative_paths_fall_back_to_the_manifest_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "manifests" / "c"
    (root / "slides").mkdir(parents=True)
    (root / "slides" / "b.svs").write_bytes(b"x")  # only next to the manifest
    (tmp_path / "here.svs").write_bytes(b"x")  # in the working directory
    csv = _write(root / "slides.csv", [
        {"slide_id": "b", "path": "slides/b.svs", "patient_id": "p2", "label": 1, "mpp": 0.25},
        {"slide_id": "a", "path": "here.svs", "patient_id": "p1", "label": 0, "mpp": ""},
        {"slide_id": "c", "path": "/abs/c.svs", "patient_id": "p1", "label": 1, "mpp": ""},
    ])
    monkeypatch.chdir(tmp_path)
    df = read_manifest(csv)
    assert df["slide_id"].tolist() == ["b", "a", "c"]  # file order
    assert df["path"].tolist() == [str(root / "slides" / "b.svs"), "here.svs", "/abs/c.svs"]
    assert df["mpp"].tolist() == ["0.25", "", ""] and [valid_mpp(v) for v in df["mpp"]] == [0.25, None, None]
    assert read_manifest(csv, sort=True)["slide_id"].tolist() == ["a", "b", "c"]
    rows = read_manifest_rows(csv)  # the pandas-free reader tiling uses gives the same cells
    assert [(r.slide_id, r.path, r.mpp) for r in rows] == list(zip(df["slide_id"], df["path"], df["mpp"], strict=True))
    assert [r.slide_id for r in read_manifest_rows(csv, sort=True)] == ["a", "b", "c"]
    lab = read_manifest(csv, columns=LABELLED_COLUMNS, labelled=True)
    assert lab["label"].dtype.kind == "i" and lab["patient_id"].tolist() == ["p2", "p1", "p1"]


def test_manifest_without_mpp_gets_an_empty_column(tmp_path: Path) -> None:
    csv = _write(tmp_path / "slides.csv", [{"slide_id": "007", "path": "/x.svs"}])
    df = read_manifest(csv)
    assert df["slide_id"].tolist() == ["007"] and df["mpp"].tolist() == [""]  # ids stay str (leading zeros)
    assert read_manifest_rows(csv)[0][::2] == ("007", "")


@pytest.mark.parametrize(("rows", "kwargs", "match"), [
    ([{"slide_id": "a"}], {}, r"lacks column\(s\) \['path'\]"),
    ([{"slide_id": "a", "path": "x"}, {"slide_id": "a", "path": "y"}], {}, "duplicate slide_id"),
    ([{"slide_id": "a/b", "path": "x"}], {}, "cannot be file names"),
    ([{"slide_id": "a", "path": "x", "patient_id": "p", "label": ""}], {"labelled": True}, "empty label"),
    ([{"slide_id": "a", "path": "x", "label": 1}], {"labelled": True}, r"lacks column\(s\) \['patient_id'\]"),
])
def test_errors_name_the_file(tmp_path: Path, rows: list[dict], kwargs: dict, match: str) -> None:
    csv = _write(tmp_path / "slides.csv", rows)
    with pytest.raises(ValueError, match=match) as err:
        read_manifest(csv, **kwargs)
    assert str(csv) in str(err.value)
    if not kwargs:  # the pandas-free reader refuses the same files with the same message
        with pytest.raises(ValueError, match=match) as err:
            read_manifest_rows(csv)
        assert str(csv) in str(err.value)
    with pytest.raises(FileNotFoundError, match="slide manifest not found"):
        read_manifest(tmp_path / "missing.csv")
    with pytest.raises(FileNotFoundError, match="slide manifest not found"):
        read_manifest_rows(tmp_path / "missing.csv")


def test_a_frame_is_checked_the_same_way() -> None:
    df = pd.DataFrame({"slide_id": ["s1", "s2"], "patient_id": ["p", "q"], "label": [1.0, 0.0]})
    out = read_manifest(df, columns=LABELLED_COLUMNS, labelled=True)
    assert out["label"].tolist() == [1, 0] and out["label"].dtype.kind == "i"
    with pytest.raises(ValueError, match="manifest: empty label"):
        read_manifest(df.assign(label=[1.0, None]), columns=LABELLED_COLUMNS, labelled=True)
