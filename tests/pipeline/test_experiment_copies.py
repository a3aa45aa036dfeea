"""`dvc exp run --temp` / `--queue` run in a copy made from git and the DVC cache: an output in neither is missing
there, so its stage reruns in every experiment. Round 19 found two: the pretraining checkpoint (`cache: false`,
git-ignored), whose absence retrained the encoder for an experiment on a MIL or DE setting, and train_mil's two
figures, whose absence reran Table 1 for any downstream experiment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DVC = Path(sys.executable).parent / "dvc"
COHORT = "tcga_synth"  # stands in for ${key} / ${base.train_cohort} in templated paths


def _uncached_outputs() -> list[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for out in body.get(kind) or []:
                if isinstance(out, dict):
                    for path, opts in out.items():
                        if (opts or {}).get("cache") is False:
                            paths.append(path.replace("${key}", COHORT).replace("${base.train_cohort}", COHORT))
    return paths


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the project's git checkout")
def test_every_uncached_output_is_tracked_by_git() -> None:
    uncached = _uncached_outputs()
    assert "reports/metrics/mil.json" in uncached  # the parse finds them
    ignored = subprocess.run(["git", "check-ignore", *uncached], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == [], (
        "outputs with `cache: false` that git ignores are in no experiment copy (their stages rerun in every "
        f"`dvc exp run --temp`): {ignored.stdout.split()}")


UP = """
import os, sys
from pathlib import Path
with open(os.environ["UP_RUNS"], "a") as log:
    log.write("up\\n")
Path("ckpt").mkdir(exist_ok=True)
Path("ckpt/state.txt").write_text("epoch 3\\n")
Path("model.txt").write_text("weights\\n")
"""

DOWN = """
import yaml
from pathlib import Path
b = yaml.safe_load(open("params.yaml"))["b"]
Path("result.txt").write_text(Path("model.txt").read_text() + f"b={b}\\n")
"""


def _project(root: Path, env: dict[str, str], *, cache_ckpt: bool) -> None:
    root.mkdir()
    (root / "up.py").write_text(UP)
    (root / "down.py").write_text(DOWN)
    (root / "params.yaml").write_text("a: 1\nb: 1\n")
    ckpt = {"persist": True} if cache_ckpt else {"persist": True, "cache": False}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "up": {"cmd": f"{sys.executable} up.py", "deps": ["up.py"], "params": ["a"],
               "outs": ["model.txt", {"ckpt": ckpt}]},
        "down": {"cmd": f"{sys.executable} down.py", "deps": ["down.py", "model.txt"], "params": ["b"],
                 "outs": ["result.txt"]}}}))
    (root / ".gitignore").write_text("/ckpt\n")  # as the project's data/ (git-ignored; DVC may version it)
    for cmd in (["git", "init", "-q"], [str(DVC), "init", "-q"], [str(DVC), "repro", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "repro"]):
        out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, f"{cmd}: {out.stdout[-2000:]}{out.stderr[-2000:]}"


@pytest.mark.skipif(not DVC.exists(), reason="dvc is installed with the project's dev dependencies")
@pytest.mark.parametrize("cache_ckpt", [True, False], ids=["cached", "uncached"])
def test_temp_experiment_reruns_an_upstream_stage_only_when_its_output_is_uncached(
        tmp_path: Path, cache_ckpt: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(DVC_NO_ANALYTICS="1", GIT_PYTHON_REFRESH="quiet", DVC_SITE_CACHE_DIR=str(tmp_path / "site-cache"),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@x",
               UP_RUNS=str(tmp_path / "up_runs.log"))
    proj = tmp_path / "proj"
    _project(proj, env, cache_ckpt=cache_ckpt)
    exp = subprocess.run([str(DVC), "exp", "run", "--temp", "-S", "b=2"], cwd=proj, env=env, capture_output=True,
                         text=True, timeout=240)
    assert exp.returncode == 0, exp.stdout[-2000:] + exp.stderr[-2000:]
    assert "Running stage 'down'" in exp.stdout
    runs = (tmp_path / "up_runs.log").read_text().split()
    # cached: the copy checks the checkpoint out of the cache and only `down` runs; uncached: `up` runs again
    assert runs == (["up"] if cache_ckpt else ["up", "up"]), exp.stdout[-2000:]
