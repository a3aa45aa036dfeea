"""The README's real-data steps under ``params.paper.yaml``, end to end on a pilot cohort laid out as a GDC download.

The demo test (``test_dvc_pipeline``) runs the demo profile; nothing ran the paper profile until a dress rehearsal
found four faults in it (round 20). This test follows those steps: the generator's cohort copied into
``data/raw/tcga_brca`` / ``data/raw/cptac_brca`` the way gdc-client lays files out, plus two real slides the
project did not make (CMU-1, an Aperio SVS at 0.499 µm/px, as a TCGA tumour slide with no RNA-seq; the DICOM test
slide at 2.004 µm/px in the CPTAC manifest); since round 21 the tumour slides are frozen sections, as a "Tissue Slide"
download has them, plus one FFPE diagnostic slide that the profile's ``preparation: frozen`` leaves out; since round
22 both GDC sheets are in the layout the GDC Data Portal 2 writes (no Sample Type) and the DICOM slide is a series
directory as `idc download` writes it, its slide id holding the dotted SeriesInstanceUID; ``dvc add data/raw``,
``cp params.paper.yaml params.yaml`` with the compute shrunk (the backbone stays the paper's ResNet50 cut after
layer3), ``dvc repro``, then what a user runs next.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from histcode.config import merge_params

pytestmark = pytest.mark.slow  # a whole `dvc repro` in its module fixture: scheduled first

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DATA = ROOT / "tests" / "data"

COHORT = {"n_patients": 6, "n_patients_external": 2, "n_without_normal": 1, "slide_width": 1536,
          "slide_height": 1280, "n_genes_background": 40, "workers": 1, "n_svs": 1, "n_40x": 1,
          "n_svs_external": 1, "progress": False, "seed": 2525}

PILOT = {  # what a CPU pilot changes; everything else is the paper profile (ResNet50-trunc, 1024-d, 5 seeds...)
    "tile": {"workers": 1},
    "stain": {"fit_tiles": 16},
    "pretrain": {"epochs": 1, "warmup_epochs": 0, "batch_size": 16, "tiles_per_slide": 1.0, "max_tiles_per_slide": 16,
                 "input_px": 64, "read_px": 64, "bank_size": 64, "workers": 0, "progress": False},
    "extract": {"input_px": 64, "batch_size": 32, "workers": 0, "progress": False},
    "mil": {"n_folds": 3, "max_epochs": 4, "min_epochs": 2, "patience": 2, "bootstrap": 50, "progress": False},
    "heatmaps": {"slides": 1, "gallery_tiles": 2},
    "de": {"n_folds": 3, "epochs": 20, "mil_epochs": 2, "top_l": 10, "bottom_l": 10, "null_shuffles": 2,
           "progress": False},
    "evaluate_de": {"n_random": 10, "heatmap_slides": 1, "n_permutations": 100, "progress": False},
    "tune": {"mil": {"n_trials": 2, "timeout_s": None, "folds": 2}},
}

CMU1_ROW = ("4c0ffee0-0000-4000-8000-00000000c001\tTCGA-ZZ-CMU1-01A-01-TS1.0f1e2d3c-4b5a-4697-8877-665544332211.svs"
            "\tBiospecimen\tSlide Image\tTCGA-BRCA\tTCGA-ZZ-CMU1\tTCGA-ZZ-CMU1-01A\tPrimary Tumor\n")
DX_NAME = "{patient}-01Z-00-DX1.5e1f0a7b-9c2d-4e3f-8a1b-2c3d4e5f6a7b.svs"  # one FFPE diagnostic slide in the download
# the real DICOM test slide as `idc download` lays a series out (its own SeriesInstanceUID), as `histcode idc-manifest`
# writes its row: slide id = PatientID_SeriesInstanceUID, file_name = the series directory
DICOM_UID = "1.2.826.0.1.3680043.8.498.11764839976753647355928582439608067319"
DICOM_SLIDE = f"DCM01_{DICOM_UID}"
DICOM_DIR = f"cptac_brca/DCM01/2.25.1/SM_{DICOM_UID}"
PORTAL2 = {"Primary Tumor": "Tumor\tPrimary", "Solid Tissue Normal": "Normal\tNot Applicable"}


def _as_portal2_sheet(path: Path) -> None:
    """A GDC Data Portal 2 sheet, as the portal writes one today: Tissue Type, Tumor Descriptor, Specimen Type and
    Preservation Method instead of Sample Type (the layout of a real 2025 TCGA-LUAD sheet)."""
    head, *rows = path.read_text().splitlines()
    assert head.endswith("\tSample Type")
    out = [head.removesuffix("Sample Type") + "Tissue Type\tTumor Descriptor\tSpecimen Type\tPreservation Method"]
    for row in rows:
        rest, sample_type = row.rsplit("\t", 1)
        out.append(f"{rest}\t{PORTAL2[sample_type]}\tSolid Tissue\tUnknown")
    path.write_text("\n".join(out) + "\n")


def _as_tissue_slide_download(cohort: Path) -> str:
    """The generator names its tumour slides as TCGA's FFPE diagnostic slides (DX1); a download of the "Tissue
    Slide" images, which the paper profile keeps (``preparation: frozen``), has the tumour samples' frozen sections
    (01A-01-TS1) instead. Rename them so, and add one DX slide back, as downloading every "Slide Image" would.
    Returns the DX slide's file name."""
    sheet_path = cohort / "gdc_sample_sheet.slides.tsv"
    sheet = sheet_path.read_text()
    for f in sorted((cohort / "slides").iterdir()):
        if "-01Z-00-DX1." in f.name:
            new = f.name.replace("-01Z-00-DX1.", "-01A-01-TS1.")
            f.rename(f.with_name(new))
            sheet = sheet.replace(f.name, new)
    sheet = sheet.replace("-01Z\tPrimary Tumor", "-01A\tPrimary Tumor")
    frozen = sorted((cohort / "slides").glob("*-01A-01-TS1.*"))[0]
    patient = frozen.name[:12]
    dx = DX_NAME.format(patient=patient)
    shutil.copy(frozen, frozen.with_name(dx))
    sheet_path.write_text(sheet + f"dx-0001\t{dx}\tBiospecimen\tSlide Image\tTCGA-BRCA\t{patient}\t{patient}-01Z"
                          "\tPrimary Tumor\n")
    return dx


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 900, ok: bool = True) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], str]:
    proj = tmp_path_factory.mktemp("paper_pilot")
    for name in ("dvc.yaml", "params.paper.yaml", "Makefile"):
        shutil.copy(ROOT / name, proj / name)
    for name in ("src", "pipelines"):
        shutil.copytree(ROOT / name, proj / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", DVC_NO_ANALYTICS="1", MPLBACKEND="Agg",
               DVC_SITE_CACHE_DIR=str(proj / ".dvc" / "tmp" / "site-cache"),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e")
    # the download: the generator's formats, laid out as README "Real data" step 2 says, plus two real slides
    gen = proj.parent / f"{proj.name}_download"
    (gen / "params.yaml").parent.mkdir(parents=True, exist_ok=True)
    (gen / "params.yaml").write_text(yaml.safe_dump({"synth": COHORT}))
    _run([str(BIN / "histcode"), "synth", "--params", str(gen / "params.yaml"), "--out", str(gen / "out")], gen, env)
    raw = proj / "data" / "raw"
    shutil.copytree(gen / "out" / "tcga_synth", raw / "tcga_brca")
    shutil.copytree(gen / "out" / "cptac_synth", raw / "cptac_brca")
    _as_tissue_slide_download(raw / "tcga_brca")
    shutil.copy(DATA / "CMU-1-Small-Region.svs", raw / "tcga_brca" / "slides" / CMU1_ROW.split("\t")[1])
    with open(raw / "tcga_brca" / "gdc_sample_sheet.slides.tsv", "a") as fh:
        fh.write(CMU1_ROW)
    for sheet in ("gdc_sample_sheet.slides.tsv", "gdc_sample_sheet.rnaseq.tsv"):
        _as_portal2_sheet(raw / "tcga_brca" / sheet)
    series = raw / "cptac_brca" / "slides" / DICOM_DIR
    series.mkdir(parents=True)
    shutil.copy(DATA / "slidetool_test_dicom.dcm", series / "4c0ffee0-0000-4000-8000-0000000dc001.dcm")
    with open(raw / "cptac_brca" / "cptac_brca_manifest.csv", "a") as fh:
        fh.write(f"{DICOM_SLIDE},{DICOM_DIR},DCM01,tumor\n")
    params = merge_params(yaml.safe_load((ROOT / "params.paper.yaml").read_text()), PILOT)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], proj, env)
    _run([str(BIN / "dvc"), "init", "-q"], proj, env)
    _run([str(BIN / "dvc"), "config", "core.analytics", "false"], proj, env)
    (proj / ".gitignore").write_text("mlruns/\noptuna/\n__pycache__/\n")
    _run([str(BIN / "dvc"), "add", "data/raw"], proj, env)  # step 3
    _run(["git", "add", "-A"], proj, env)
    _run(["git", "commit", "-qm", "paper-profile pilot"], proj, env)
    log = _run([str(BIN / "dvc"), "repro"], proj, env, timeout=1500)  # step 4
    return proj, env, log


def test_the_paper_profile_runs_every_stage_on_a_gdc_layout(pilot: tuple[Path, dict[str, str], str]) -> None:
    proj, _, log = pilot
    assert "Running stage 'synth" not in log  # base.synth_runs: [] — the generator never runs on real data
    table = json.loads((proj / "reports/mil/table1.json").read_text())["table1"]
    assert len(table) == 8 and all(0.0 <= r["auc"] <= 1.0 for r in table)
    import h5py

    feats = sorted((proj / "data/features/tcga_brca/adco").glob("*.h5"))
    assert len(feats) == 13  # 12 generated slides + CMU-1
    with h5py.File(feats[0]) as f:
        assert f["features"].shape[1] == 1024  # the paper's ResNet50 cut after layer3
    targets = json.loads((proj / "reports/metrics/de_targets.json").read_text())
    # CMU-1's patient has no RNA-seq and one generated patient no matched normal: both excluded, and counted
    assert (targets["patients"], targets["pairs"], targets["excluded_patients"]) == (6, 5, 2)
    assert (proj / "reports/tune/mil_best.yaml").exists()


def test_the_profile_keeps_frozen_sections_and_records_the_ffpe_slide(
        pilot: tuple[Path, dict[str, str], str]) -> None:
    """``preparation: frozen`` (the paper profile): the one DX slide is excluded with its reason, every other slide is
    a frozen section, and tumour vs normal is not confounded with preparation."""
    proj, _, log = pilot
    fails = pd.read_csv(proj / "data/manifests/tcga_brca/failures.csv")
    dx = fails[fails["kind"] == "excluded_preparation"]
    assert len(dx) == 1 and dx["file"].iloc[0].endswith("-01Z-00-DX1.5e1f0a7b-9c2d-4e3f-8a1b-2c3d4e5f6a7b.svs")
    assert "base.cohorts.tcga_brca.preparation is 'frozen' and it is a FFPE (DX) slide" in dx["reason"].iloc[0]
    ingest = json.loads((proj / "reports/metrics/ingest/tcga_brca.json").read_text())
    assert (ingest["slides_frozen"], ingest["slides_ffpe"], ingest["preparation_confounded"]) == (13, 0, 0)
    assert "confounded with tissue preparation" not in log


def test_the_coarse_real_slide_is_tiled_and_flagged(pilot: tuple[Path, dict[str, str], str]) -> None:
    proj, _, log = pilot
    external = json.loads((proj / "reports/metrics/tile/cptac_brca.json").read_text())
    train = json.loads((proj / "reports/metrics/tile/tcga_brca.json").read_text())
    assert (external["n_done"], external["n_upsampled"]) == (5, 1) and train["n_upsampled"] == 0
    assert f"{DICOM_SLIDE} was scanned at 2.004 µm/px" in log and "enlarged 4.0x" in log
    assert "GDC Data Portal 2 sample sheet" in log  # both sheets in today's layout, read alike


def test_eval_cptac_takes_the_profiles_external_cohort(pilot: tuple[Path, dict[str, str], str]) -> None:
    """`make eval-cptac` evaluated `cptac_synth` under the paper profile; now the cohort with role: external. With
    no champion it says how to use the unpromoted challenger, and that works."""
    proj, env, _ = pilot
    # the project's Makefile with this venv (-o: its install stamp is not remade here)
    refused = subprocess.run(["make", "-s", "eval-cptac", "-o", ".venv/.installed", f"BIN={BIN}"], cwd=proj, env=env,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "cptac_synth" not in refused.stderr, refused.stderr
    assert "no model version histcode-encoder@champion" in refused.stderr and "--alias challenger" in refused.stderr
    heatmap = [str(BIN / "histcode"), "heatmap", "--cohort", "cptac_brca", "--slide", DICOM_SLIDE, "--out", "hm"]
    missing = subprocess.run(heatmap, cwd=proj, env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr  # one line, not a trace
    assert "attention file missing" in missing.stderr and "`make eval-cptac` (an external cohort" in missing.stderr
    stale = proj / "data/attention/cptac_brca/clam_sb/gone-from-the-manifest.h5"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"an earlier evaluation's file")
    out = _run([str(BIN / "histcode"), "evaluate-external", "--alias", "challenger", "--no-progress"], proj, env)
    assert "cptac_brca: 5 slides" in out
    # every external slide now has the evaluated model's attention, and the heatmap command says whose it is
    assert sorted(p.name for p in stale.parent.glob("*.h5")) == sorted(
        p.name for p in (proj / "data/features/cptac_brca/adco").glob("*.h5"))
    shown = _run(heatmap, proj, env)
    assert "attention of histcode-mil v1 (@challenger)" in shown
    assert all((proj / "hm" / f).stat().st_size > 10_000 for f in ("heatmap.png", "top_tiles.png"))
    summary = _run([str(BIN / "histcode"), "summary"], proj, env)
    assert "(histcode-encoder v1 + histcode-mil v1, @challenger then, not the champions)" in summary
