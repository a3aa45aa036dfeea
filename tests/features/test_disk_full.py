"""Issue 16 item 5: a full disk during extraction is one clear error; finished slides stay, no temp files."""

from __future__ import annotations

import errno
from pathlib import Path

import pandas as pd
import pytest

from histcode.features.stage import run_extract
from histcode.io import features as store
from histcode.preflight import OutputError

PARAMS = {
    "base": {"seed": 11, "train_cohort": "synth",
             "cohorts": {"synth": {"kind": "barcode", "source_dir": "slides", "slide_dir": "slides"}}},
    "extract": {"encoders": ["random"], "input_px": 32, "batch_size": 4, "workers": 0, "threads": 1,
                "dtype": "float16", "bf16": False, "stain": False, "progress": False},
}


def test_enospc_names_the_folder_keeps_finished_slides(synth_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = sorted(pd.read_csv(synth_project / "data/manifests/synth/slides.csv")["slide_id"])
    real_write = store.FeatureWriter.write

    def write(self: store.FeatureWriter, features, coords) -> None:  # type: ignore[no-untyped-def]
        if self.path.stem != ids[0]:  # the first slide fits, then the disk is full (as HDF5 reports it)
            raise OSError(errno.ENOSPC, "Can't write data (file write failed: errno = 28, error message = "
                                        "'No space left on device')")
        real_write(self, features, coords)

    monkeypatch.setattr(store.FeatureWriter, "write", write)
    with pytest.raises(OutputError) as err:
        run_extract(PARAMS, cohort="synth")
    msg = str(err.value)
    out = synth_project / "data/features/synth/random"
    assert msg.startswith("data/features/synth/random: disk full (")
    assert "KiB more needed for the 2 unfinished slide(s)" in msg  # 18 tiles x (256 x 2 + 8) bytes
    assert "1 finished slide(s) kept" in msg and "\n" not in msg
    assert sorted(p.stem for p in out.glob("*.h5")) == [ids[0]]
    assert not list(out.rglob("*.tmp")), "temp files left behind"
    monkeypatch.setattr(store.FeatureWriter, "write", real_write)  # space freed: the rerun resumes
    metrics = run_extract(PARAMS, cohort="synth")
    assert (metrics["random/slides_skipped"], metrics["random/slides_done"]) == (1, 2)
