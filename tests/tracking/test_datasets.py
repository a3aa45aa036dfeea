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


def test_every_run_carries_its_nested_config_as_an_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow 3.17's compare view shows "Something went wrong" in its Artifacts section when one compared run has
    no artifact (seen in Chromium comparing a fold run with a method run); every run now carries run_config.json,
    the params nested as in params.yaml (MLflow's own params are flat strings)."""
    import json

    import mlflow

    monkeypatch.chdir(tmp_path)
    params = {"mil": {"lr": 1e-3, "baselines": ["mean", "max"]}, "out": tmp_path / "x"}
    with (tracking.start_run("cfg", run_name="parent", stage="train_mil", cohort="toy", params=params) as parent,
          tracking.start_run("cfg", run_name="fold-0", stage="train_mil", nested=True) as child):
        pass
    client = mlflow.MlflowClient()
    for run, want in ((parent, {"mil": {"lr": 1e-3, "baselines": ["mean", "max"]}, "out": str(tmp_path / "x")}),
                      (child, {})):
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [tracking.RUN_CONFIG]
        got = json.loads(Path(client.download_artifacts(run.info.run_id, tracking.RUN_CONFIG,
                                                        str(tmp_path))).read_text())
        assert got["params"] == want and got["stage"] == "train_mil"
    assert got["run_name"] == "fold-0" and got["cohort"] is None


def test_the_data_hash_is_the_producing_stages_not_a_stale_consumers(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Mid-`dvc repro`, dvc.lock holds a path twice: as the finished producer's out (new hash) and as a
    consumer's dep (its previous hash, until that stage finishes). Runs tag the producer's: before, the tag
    depended on the lock's history (a fresh clone and a worked-in copy tagged the same features differently)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n"
        "  extract:\n    cmd: x\n    outs:\n    - path: data/features/c\n      md5: new.dir\n"
        "  train_mil:\n    cmd: y\n    deps:\n    - path: data/features/c\n      md5: old.dir\n"
        "  heatmaps:\n    cmd: z\n    deps:\n    - path: data/features/c/\n      md5: old.dir\n")
    import hashlib

    assert tracking.dvc_hash(["data/features/c"]) == hashlib.md5(b"data/features/c:new.dir").hexdigest()


def test_a_path_inside_a_tracked_folder_hashes_its_content_not_its_mtimes(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """train_mil reads data/features/<cohort>/<encoder>, inside the tracked data/features/<cohort>: its hash comes
    from the folder's manifest in the DVC cache, so two clones with the same files tag the same hash."""
    import json
    import os

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  extract:\n    cmd: x\n    outs:\n"
                                       "    - path: data/features/c\n      md5: ab12.dir\n")
    manifest = tmp_path / ".dvc/cache/files/md5/ab/12.dir"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps([{"relpath": "adco/s1.h5", "md5": "m1"}, {"relpath": "adco/s2.h5", "md5": "m2"},
                                    {"relpath": "random/s1.h5", "md5": "m3"}]))
    (tmp_path / "data/features/c/adco").mkdir(parents=True)
    f = tmp_path / "data/features/c/adco/s1.h5"
    f.write_bytes(b"x")
    first = tracking.dvc_hash(["data/features/c/adco"])
    os.utime(f, (1, 1))  # another clone: same content, other mtimes
    assert tracking.dvc_hash(["data/features/c/adco"]) == first
    manifest.write_text(json.dumps([{"relpath": "adco/s1.h5", "md5": "m1"}, {"relpath": "adco/s2.h5", "md5": "mX"},
                                    {"relpath": "random/s1.h5", "md5": "m3"}]))
    assert tracking.dvc_hash(["data/features/c/adco"]) != first  # a file under it changed
    manifest.write_text(json.dumps([{"relpath": "adco/s1.h5", "md5": "m1"}, {"relpath": "adco/s2.h5", "md5": "mX"},
                                    {"relpath": "random/s1.h5", "md5": "mY"}]))
    assert tracking.dvc_hash(["data/features/c/adco"]) == tracking.dvc_hash(["data/features/c/adco/"])
    same = tracking.dvc_hash(["data/features/c/adco"])
    shared = tmp_path / "shared-cache"  # `dvc cache dir`: the manifest lives in the team's cache
    (shared / "files/md5/ab").mkdir(parents=True)
    manifest.rename(shared / "files/md5/ab/12.dir")
    (tmp_path / ".dvc/config").write_text(f"[cache]\n    dir = {shared}\n")
    assert tracking.dvc_hash(["data/features/c/adco"]) == same
