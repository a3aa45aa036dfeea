"""End-to-end smoke test: the real dvc.yaml, pipelines/ and params on a tiny synthetic cohort.

Runs ``dvc repro`` of the whole pipeline in a throwaway git+DVC project (the repository's dvc.yaml,
pipelines/ and src/ copied in, params shrunk), then checks what a user relies on: every stage's outputs
and metrics, models registered with ``@challenger``, a second ``dvc repro`` doing nothing, and a change of
``mil.pooling`` invalidating exactly the MIL stage and what depends on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from histcode.config import merge_params

pytestmark = pytest.mark.slow  # a whole `dvc repro` in its module fixture: scheduled first

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TINY = {
    "synth": {"n_patients": 6, "n_patients_external": 2, "n_without_normal": 1, "slide_width": 1536,
              "slide_height": 1280, "n_genes_background": 40, "workers": 1, "n_svs": 1, "n_40x": 1,
              "n_svs_external": 1, "progress": False},
    "tile": {"workers": 1},
    "stain": {"fit_tiles": 16},
    "pretrain": {"epochs": 1, "batch_size": 16, "max_tiles_per_slide": 16, "input_px": 64, "read_px": 64,
                 "bank_size": 64, "workers": 0, "progress": False},
    "extract": {"encoders": ["adco"], "input_px": 64, "batch_size": 32, "workers": 0, "progress": False},
    "mil": {"n_folds": 3, "max_epochs": 6, "min_epochs": 2, "patience": 3, "bootstrap": 50, "progress": False},
    "heatmaps": {"slides": 1, "gallery_tiles": 2},
    "de": {"n_folds": 3, "epochs": 30, "mil_epochs": 2, "top_l": 10, "bottom_l": 10, "progress": False},
    "evaluate_de": {"n_random": 10, "heatmap_slides": 1, "progress": False},
    "tune": {"mil": {"n_trials": 2, "timeout_s": None, "folds": 2}},
    "promote": {"thresholds": {"histcode-encoder": 0.0, "histcode-mil": 0.0, "histcode-de": -1.0}, "bootstrap": 50},
}

# stages whose own deps/params change with mil.pooling (train_de through de.attention_model: null = mil.pooling);
# evaluate_de follows once train_de's outs change
MIL_DIRECT = {"train_mil", "heatmaps", "tune_mil", "train_de"}


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{tail}")
    return proc.stdout + proc.stderr


def _changed_stages(project: Path, env: dict[str, str]) -> set[str]:
    out = json.loads(_run([str(BIN / "dvc"), "status", "--json"], project, env))
    return {name.split("@")[0] for name in out if not name.endswith(".dvc")}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    proj = tmp_path_factory.mktemp("histcode_project")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, proj / name)
    for name in ("src", "pipelines"):
        shutil.copytree(ROOT / name, proj / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = merge_params(yaml.safe_load((proj / "params.yaml").read_text()), TINY)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", DVC_NO_ANALYTICS="1", MPLBACKEND="Agg",
               DVC_SITE_CACHE_DIR=str(proj / ".dvc" / "tmp" / "site-cache"),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e")
    _run(["git", "init", "-q"], proj, env)
    _run([str(BIN / "dvc"), "init", "-q"], proj, env)
    _run([str(BIN / "dvc"), "config", "core.analytics", "false"], proj, env)
    (proj / ".gitignore").write_text("mlruns/\noptuna/\n__pycache__/\n")
    _run(["git", "add", "-A"], proj, env)
    _run(["git", "commit", "-qm", "tiny project"], proj, env)
    _run([str(BIN / "dvc"), "repro"], proj, env, timeout=1500)
    return proj, env


def test_every_stage_produces_its_contract(project: tuple[Path, dict[str, str]]) -> None:
    proj, _ = project
    mil = json.loads((proj / "reports/metrics/mil.json").read_text())
    table = {r["method"]: r for r in json.loads((proj / "reports/mil/table1.json").read_text())["table1"]}
    assert mil["primary_pooling"] == "clam_sb" and len(table) == 8  # Table 1: HistCode + 7 baselines
    for pooling, row in table.items():
        assert 0.0 <= mil[f"{pooling}.auc"] == row["auc"] <= 1.0
        assert row["auc_ci_low"] <= row["auc"] <= row["auc_ci_high"]
    de = json.loads((proj / "reports/metrics/de.json").read_text())
    assert de["n_genes"] >= 200 and -1.0 <= de["pearson_r_median"] <= 1.0 and 0.0 <= de["wilcoxon_p"] <= 1.0
    tiles = json.loads((proj / "reports/metrics/tile/tcga_synth.json").read_text())
    assert tiles["n_slides"] == 12 and tiles["n_failed"] == 0 and tiles["n_tiles"] >= 12 * 20
    feats = sorted((proj / "data/features/tcga_synth/adco").glob("*.h5"))
    attn = sorted((proj / "data/attention/tcga_synth/clam_sb").glob("*.h5"))
    assert len(feats) == 12 and [f.name for f in attn] == [f.name for f in feats]
    preds = (proj / "data/predictions/mil/tcga_synth.csv").read_text().splitlines()
    assert preds[0].split(",")[:7] == ["slide_id", "patient_id", "fold", "split", "label", "prob_tumor", "pooling"]
    assert any((proj / "reports/figures/heatmaps").rglob("*.png"))
    assert (proj / "reports/tune/mil_best.yaml").exists()


def test_models_registered_as_challenger(project: tuple[Path, dict[str, str]]) -> None:
    proj, env = project
    code = ("import mlflow; c = mlflow.MlflowClient(); "
            "print(sorted(m.name for m in c.search_registered_models() if 'challenger' in m.aliases))")
    out = _run([str(BIN / "python"), "-c", code],
               proj, {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{proj / 'mlruns' / 'mlflow.db'}"})
    assert out.strip().splitlines()[-1] == "['histcode-de', 'histcode-encoder', 'histcode-mil']"


def test_eval_external_needs_a_champion_then_reports_metrics(project: tuple[Path, dict[str, str]]) -> None:
    proj, env = project
    cmd = [str(BIN / "histcode"), "evaluate-external", "--cohort", "cptac_synth", "--no-progress"]
    refused = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "no model version histcode-encoder@champion" in refused.stderr
    assert "make promote" in refused.stderr
    promoted = _run([str(BIN / "histcode"), "promote"], proj, env)
    assert "histcode-mil: PROMOTED" in promoted and "histcode-encoder: PROMOTED" in promoted
    _run(cmd, proj, env)
    metrics = json.loads((proj / "reports/metrics/eval_cptac_synth.json").read_text())
    assert metrics["n"] == 4 and metrics["n_failed"] == 0 and 0.0 <= metrics["auc"] <= 1.0
    # extracted once: `dvc repro` already extracted cptac_synth with this very encoder version (issue 15 §6)
    assert len(list((proj / "data/features/cptac_synth/adco").glob("*.h5"))) == 4
    assert not list((proj / "data/external/cptac_synth/features/encoder-v1").glob("*.h5"))
    assert _changed_stages(proj, env) == set()  # external validation never touches DVC-owned outputs


def test_summary_reads_the_real_outputs_by_their_declared_keys(project: tuple[Path, dict[str, str]]) -> None:
    """Every metrics file summary reads holds its declared keys (histcode.tables.METRICS_FILES)."""
    from histcode.summary import summary_lines

    proj, _ = project
    problems: list[str] = []
    text = "\n".join(summary_lines(proj / "reports", proj / "reports/figures", None, problems))
    assert problems == []
    for line in ("tiles  tcga_synth:", "pretrain: final loss", "  clam_sb ", "attention vs truth (clam_sb",
                 "differential expression (", "external cptac_synth: AUC"):
        assert line in text, line


def test_second_repro_is_noop_and_pooling_change_reruns_only_mil_and_downstream(
    project: tuple[Path, dict[str, str]],
) -> None:
    proj, env = project
    assert _changed_stages(proj, env) == set()
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["mil"]["pooling"] = "mean"
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _changed_stages(proj, env) == MIL_DIRECT  # nothing upstream (synth..extract) is invalidated
