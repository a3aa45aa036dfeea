from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from histcode.genes.inputs import build_de_inputs, top_bottom_embedding, top_bottom_indices


def test_top_bottom_pick_exact_tiles_of_hand_made_bag():
    attention = np.array([0.5, 3.0, -1.0, 2.0, 2.0, -4.0, 0.0])
    feats = np.arange(7 * 3, dtype=np.float32).reshape(7, 3) ** 1.5
    top, bottom = top_bottom_indices(attention, 2, 2)
    # 2.0 ties between tiles 3 and 4: stable order keeps tile 3
    assert top.tolist() == [1, 3]
    assert bottom.tolist() == [5, 2]
    emb = top_bottom_embedding(feats, attention, 2, 2)
    expected = np.concatenate([feats[[1, 3]].mean(0), feats[[5, 2]].mean(0)])
    assert emb.shape == (6,)
    np.testing.assert_allclose(emb, expected, rtol=1e-6)


def test_short_bag_uses_every_tile_for_both_halves():
    top, bottom = top_bottom_indices(np.array([0.1, 0.3, 0.2]), 100, 100)
    assert sorted(top.tolist()) == [0, 1, 2] and sorted(bottom.tolist()) == [0, 1, 2]
    assert top.tolist() == [1, 2, 0] and bottom.tolist() == [0, 2, 1]


def test_bad_attention_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        top_bottom_indices(np.array([0.1, np.nan]), 1, 1)
    with pytest.raises(ValueError, match="no tiles"):
        top_bottom_indices(np.array([]), 1, 1)
    with pytest.raises(ValueError, match="disagree"):
        top_bottom_embedding(np.zeros((3, 2)), np.zeros(4), 1, 1)


def _write(path: Path, **ds: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        for k, v in ds.items():
            fh.create_dataset(k, data=v)


def test_build_inputs_choice_short_bags_and_failures(tmp_path: Path):
    fdir, adir = tmp_path / "f", tmp_path / "a"
    rng = np.random.default_rng(0)

    def slide(sid: str, n: int, *, shift_coords: bool = False) -> np.ndarray:
        feats = rng.normal(size=(n, 4)).astype(np.float32)
        coords = np.stack([np.arange(n), np.zeros(n)], 1).astype(np.int32)
        _write(fdir / f"{sid}.h5", features=feats, coords=coords)
        _write(adir / f"{sid}.h5", coords=coords + int(shift_coords), attention_raw=np.arange(n, dtype=np.float32),
               attention=np.full(n, 1.0 / n, dtype=np.float32))
        return feats

    big = slide("P1-B", 12)
    slide("P1-A", 6)           # P1 has two tumour slides: the larger (P1-B) wins
    small = slide("P2-A", 3)   # fewer tiles than l: all used, recorded
    slide("P3-A", 8, shift_coords=True)  # attention not in the features' tile order
    manifest = pd.DataFrame({
        "slide_id": ["P1-A", "P1-B", "P2-A", "P3-A", "P4-N"],
        "patient_id": ["P1", "P1", "P2", "P3", "P4"],
        "label": [1, 1, 1, 1, 0],
    })
    out = build_de_inputs(manifest, ["P1", "P2", "P3", "P4"], fdir, adir, top_l=4, bottom_l=4, progress=False)
    assert out.patient_ids == ["P1", "P2"]
    np.testing.assert_allclose(out.x[0], np.concatenate([big[[11, 10, 9, 8]].mean(0), big[:4].mean(0)]),
                               rtol=1e-6)
    np.testing.assert_allclose(out.x[1], np.concatenate([small.mean(0), small.mean(0)]), rtol=1e-6)
    t = out.table.set_index("patient_id")
    assert t.loc["P1", "slide_id"] == "P1-B" and t.loc["P1", "n_candidates"] == 2
    assert t.loc["P2", "n_top"] == 3 and bool(t.loc["P2", "short_bag"]) and t.loc["P2", "n_overlap"] == 3
    assert t.loc["P3", "status"] == "failed" and "P3-A.h5" in t.loc["P3", "reason"]
    assert "re-run train_mil" in t.loc["P3", "reason"]
    assert t.loc["P4", "status"] == "failed" and "no tumour slide" in t.loc["P4", "reason"]
    assert out.slide_ids == {"P1": "P1-B", "P2": "P2-A"}


def test_frozen_section_is_chosen_over_a_larger_ffpe_slide(tmp_path: Path):
    """The RNA-seq comes from the frozen sample: its TS section is the DE input even when the patient's FFPE
    diagnostic slide (DX, another block) has more tiles; among frozen sections the larger still wins."""
    fdir, adir = tmp_path / "f", tmp_path / "a"
    rng = np.random.default_rng(1)
    ids = {"dx": "TCGA-AA-0001-01Z-00-DX1.a", "ts": "TCGA-AA-0001-01A-01-TS1.b", "bs": "TCGA-AA-0001-01A-01-BS1.c"}
    for sid, n in ((ids["dx"], 40), (ids["ts"], 9), (ids["bs"], 12)):
        coords = np.stack([np.arange(n), np.zeros(n)], 1).astype(np.int32)
        _write(fdir / f"{sid}.h5", features=rng.normal(size=(n, 4)).astype(np.float32), coords=coords)
        _write(adir / f"{sid}.h5", coords=coords, attention_raw=np.arange(n, dtype=np.float32),
               attention=np.full(n, 1.0 / n, dtype=np.float32))
    manifest = pd.DataFrame({"slide_id": list(ids.values()), "patient_id": ["TCGA-AA-0001"] * 3, "label": [1, 1, 1]})
    out = build_de_inputs(manifest, ["TCGA-AA-0001"], fdir, adir, top_l=4, bottom_l=4, progress=False)
    assert out.slide_ids == {"TCGA-AA-0001": ids["bs"]}
    only_dx = manifest.iloc[[0]]  # a DX slide alone is still used
    assert build_de_inputs(only_dx, ["TCGA-AA-0001"], fdir, adir, top_l=4, bottom_l=4,
                           progress=False).slide_ids == {"TCGA-AA-0001": ids["dx"]}
