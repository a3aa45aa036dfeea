"""Issue 16 items 4, 6, 11 for tiling: a second run on the same cohort, a read-only folder, an empty cohort."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from histcode.preflight import EmptyCohortError, OutputError
from histcode.slides.config import TileConfig
from histcode.slides.tiling import tile_cohort


def _manifest(tmp_path: Path, n: int = 1) -> Path:
    csv = tmp_path / "slides.csv"
    pd.DataFrame({"slide_id": [f"s{i}" for i in range(n)], "path": [str(tmp_path / f"s{i}.svs") for i in range(n)]}
                 ).to_csv(csv, index=False)
    return csv


def _never_run(*_: object, **__: object) -> None:
    raise AssertionError("no slide may be processed")


def test_second_run_on_a_cohort_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "tiles" / "c"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from histcode.preflight import exclusive
        with exclusive({str(out.parent / (out.name + '.shard0of1'))!r}, who="histcode tile (shard 0/1)"):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr("histcode.slides.tiling.run_jobs", _never_run)
        with pytest.raises(OutputError, match=rf"histcode tile \(shard 0/1\) \(pid {holder.pid}, .*is writing here"):
            tile_cohort(_manifest(tmp_path), out, TileConfig(), workers=0, progress=False)
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.undo()
    results = tile_cohort(_manifest(tmp_path), out, TileConfig(), workers=0, progress=False)  # lock died with it
    assert [r.status for r in results] == ["failed"]  # (the slide file does not exist)


def test_read_only_output_fails_before_any_slide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "tiles" / "c"
    out.mkdir(parents=True)
    monkeypatch.setattr("histcode.slides.tiling.run_jobs", _never_run)
    if os.geteuid() == 0:  # root ignores permissions: the immutable attribute blocks writes for root too
        subprocess.run(["chattr", "+i", str(out)], check=True)
    else:
        out.chmod(0o555)
    try:
        with pytest.raises(OutputError) as err:
            tile_cohort(_manifest(tmp_path, 3), out, TileConfig(), workers=0, progress=False)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(out)], check=True)
        out.chmod(0o755)
    assert str(err.value).startswith(f"{out}: cannot write tiles here") and "\n" not in str(err.value)


def test_empty_cohort_fails_loudly(tmp_path: Path) -> None:
    csv = _manifest(tmp_path, 0)
    with pytest.raises(EmptyCohortError, match="no slides in the manifest"):
        tile_cohort(csv, tmp_path / "tiles" / "c", TileConfig(), workers=0, progress=False)
