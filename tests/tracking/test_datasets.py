"""Issue 15 item 4: every run lists what it read as MLflow dataset inputs (name, local source, content digest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from histcode import tracking


def test_run_inputs_are_logged_as_datasets_with_content_digests(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)
    manifest = tmp_path / "data" / "manifests" / "toy" / "slides.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("slide_id,label\ns1,1\n")
    with tracking.start_run("ds", run_name="a", stage="test", inputs=[manifest, tmp_path / "missing"]) as run:
        pass
    first = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert [d.dataset.name for d in first] == ["toy/slides.csv"]  # a missing input is skipped, not fatal
    assert first[0].dataset.source_type == "local" and first[0].tags[0].value == "input"
    assert first[0].dataset.digest == tracking.dvc_hash([manifest])[:16]
    manifest.write_text("slide_id,label\ns1,1\ns2,0\n")  # new content → a new digest in the next run
    with tracking.start_run("ds", run_name="b", stage="test", inputs=[manifest]) as run:
        pass
    second = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert second[0].dataset.digest != first[0].dataset.digest
