"""Issue 16 item 3: resumable outputs survive DVC (persist), a killed stage resumes, DVC then sees it clean."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DVC = Path(sys.executable).parent / "dvc"

STAGE = textwrap.dedent("""
    # one output file per item, written atomically; finished items are skipped (as tile/extract do)
    import os, signal, sys
    from pathlib import Path
    from histcode.atomic import write_text
    out = Path("out"); out.mkdir(exist_ok=True)
    kill_after = int(os.environ.get("KILL_AFTER", "-1"))
    for i in range(5):
        target = out / f"item{i}.txt"
        if target.exists():
            continue
        if i == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # deterministic point: after `kill_after` items
        write_text(target, f"item {i}\\n")
        print("wrote", i, flush=True)
""")


def test_dvc_yaml_declares_resumable_outputs_persistent() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]

    def persisted(outs: list) -> set[str]:
        return {k for o in outs if isinstance(o, dict) for k, v in o.items() if v.get("persist")}

    assert persisted(stages["tile"]["do"]["outs"]) == {"data/tiles/${key}"}
    assert persisted(stages["extract"]["do"]["outs"]) == {"data/features/${key}"}
    assert persisted(stages["pretrain"]["outs"]) == {"data/checkpoints/pretrain"}


@pytest.mark.skipif(not DVC.exists(), reason="dvc is installed with the project's dev dependencies")
def test_killed_stage_resumes_under_dvc_and_is_clean(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DVC_NO_ANALYTICS": "1", "GIT_PYTHON_REFRESH": "quiet",
           "DVC_SITE_CACHE_DIR": str(tmp_path / "site-cache")}

    def run(*cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=tmp_path, env={**env, **kw.pop("extra", {})}, capture_output=True, text=True,
                              **kw)  # type: ignore[call-overload]

    run("git", "init", "-q", check=True)
    run(str(DVC), "init", "-q", check=True)
    (tmp_path / "stage.py").write_text(STAGE)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"work": {
        "cmd": f"{sys.executable} stage.py", "deps": ["stage.py"],
        "outs": [{"out": {"persist": True}}]}}}))
    killed = run(str(DVC), "repro", extra={"KILL_AFTER": "2"})
    assert killed.returncode != 0 and "wrote 1" in killed.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["item0.txt", "item1.txt"]  # no temp files
    resumed = run(str(DVC), "repro", check=True)
    assert "wrote 0" not in resumed.stdout and "wrote 2" in resumed.stdout  # resumed, not redone
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"item{i}.txt" for i in range(5)]
    assert not list(tmp_path.rglob("*.tmp"))
    status = run(str(DVC), "status", check=True)
    assert "up to date" in status.stdout, status.stdout
