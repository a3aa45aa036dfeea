"""Fault-injection catalogue (issue 16): break inputs, kill stages, fill the disk, tamper with the registry,
and print what a user sees, whether the rest of the work completed, and whether anything was lost or corrupt.

    PYTHONPATH=src python benchmarks/fault_injection.py [--only SUBSTRING] [--markdown]

Every case runs in its own temp folder with a private MLflow store; slides are the real OpenSlide CMU-1 test
slide (tests/data) and tiny TIFFs written here. Kills are SIGKILLs of a subprocess at a deterministic point.
Slow (minutes), so it lives outside the timed test suite; each fixed fault also has a fast regression test.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
CMU1 = DATA / "CMU-1-Small-Region.svs"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
       "DVC_NO_ANALYTICS": "1", "GIT_PYTHON_REFRESH": "quiet"}


def _load(name: str, path: Path) -> Any:
    """The test suite's own fixture helpers (one writer of synthetic slides / STAR files, not a copy)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SLIDES = _load("slides_fixtures", ROOT / "tests/slides/conftest.py")
EXPR = _load("expression_fixtures", ROOT / "tests/expression/conftest.py")


@dataclass
class Row:
    saw: str
    rest: str
    lost: str


CASES: list[tuple[str, str, Callable[[Path], Row]]] = []


def case(group: str, name: str) -> Callable[[Callable[[Path], Row]], Callable[[Path], Row]]:
    def deco(fn: Callable[[Path], Row]) -> Callable[[Path], Row]:
        CASES.append((group, name, fn))
        return fn

    return deco


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="fault-") as tmp:
        ws = Path(tmp)
        os.chdir(ws)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{ws / 'mlflow.db'}"
        try:
            yield ws
        finally:
            os.chdir(old)


def one_line(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:180]


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def own_copy(dst: Path) -> Path:
    """CMU-1 with bytes of its own (a TIFF ignores trailing bytes): ingest leaves out one file listed twice."""
    dst.write_bytes(CMU1.read_bytes() + f"copy {dst.name}".encode())
    return dst


# ---------------------------------------------------------------- slides (tiling) -------------------------
def _manifest(path: Path, rows: list[tuple[str, Path]]) -> Path:
    pd.DataFrame({"slide_id": [r[0] for r in rows], "path": [str(r[1]) for r in rows], "mpp": ""}).to_csv(
        path, index=False)
    return path


def _bad_slides_run(ws: Path) -> dict[str, Any]:
    from histcode.slides.config import TileConfig
    from histcode.slides.tiling import tile_cohort

    data = CMU1.read_bytes()
    (ws / "truncated.svs").write_bytes(data[: int(len(data) * 0.4)])
    (ws / "zero.svs").write_bytes(b"")
    blank = np.clip(SLIDES.GLASS + np.random.default_rng(1).normal(0, 2.0, (768, 1024, 3)), 0, 255).astype(np.uint8)
    SLIDES.write_tiff(ws / "blank.tif", blank, mpp=0.5)
    SLIDES.write_tiff(ws / "nompp.tif", SLIDES.make_scene(1024, 768, seed=3).rgb, levels=1)
    (ws / "good.svs").symlink_to(CMU1)
    (ws / "renamed.svs").symlink_to(CMU1)
    os.rename(ws / "renamed.svs", ws / "renamed.svs.bak")  # the sheet still names the old file
    rows = [("good", ws / "good.svs"), ("truncated", ws / "truncated.svs"), ("zero", ws / "zero.svs"),
            ("renamed", ws / "renamed.svs"), ("blank", ws / "blank.tif"), ("nompp", ws / "nompp.tif")]
    results = tile_cohort(_manifest(ws / "slides.csv", rows), ws / "tiles", TileConfig(), workers=0, progress=False)
    return {r.slide: r for r in results}


def _slide_case(slide: str) -> Callable[[Path], Row]:
    def run(ws: Path) -> Row:
        res = _bad_slides_run(ws)
        r = res[slide]
        good_ok = res["good"].status == "done" and (ws / "tiles" / "good.h5").is_file()
        plist = pd.read_csv(ws / "tiles" / "process_list.csv", dtype=str, keep_default_na=False)
        recorded = slide in set(plist["slide"][plist["status"] != "done"])
        return Row(f"recorded '{r.status}': {one_line(r.reason)}",
                   "yes (good slide tiled)" if good_ok else "NO",
                   "none" if recorded and not tmp_files(ws) else "not recorded / temp files")

    return run


for _slide, _label in (("truncated", "truncated slide"), ("zero", "zero-byte slide"),
                       ("renamed", "renamed slide (sheet names the old file)"), ("blank", "blank slide (glass)"),
                       ("nompp", "slide without MPP metadata")):
    case("good", _label)(_slide_case(_slide))


RUNNER = """
import sys
from histcode.slides.config import TileConfig
from histcode.slides.tiling import tile_cohort
tile_cohort(sys.argv[1], sys.argv[2], TileConfig(), workers=0, progress=False)
"""


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@case("good", "SIGKILL during tiling, rerun")
def kill_tiling(ws: Path) -> Row:
    from histcode.slides.config import TileConfig
    from histcode.slides.tiling import tile_cohort

    rows = []
    for i in range(4):
        (ws / f"s{i}.svs").symlink_to(CMU1)
        rows.append((f"s{i}", ws / f"s{i}.svs"))
    csv = _manifest(ws / "slides.csv", rows)
    tile_cohort(csv, ws / "ref", TileConfig(), workers=0, progress=False)
    out = ws / "tiles" / "c"
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(csv), str(out)], env=ENV)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("*.h5")) and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # deterministic point: right after the first finished slide
    proc.wait()
    at_kill = len(list(out.glob("*.h5")))
    tile_cohort(csv, out, TileConfig(), workers=0, progress=False)
    same = _tree(out) == _tree(ws / "ref")
    return Row(f"killed after {at_kill}/4 slides; rerun resumed", "yes", "none (bit-identical to an uninterrupted run)"
               if same and not tmp_files(out) else "DIFFERS")


@case("fixed", "second `histcode tile` on the same cohort")
def two_tile_runs(ws: Path) -> Row:
    from histcode.preflight import OutputError
    from histcode.slides.config import TileConfig
    from histcode.slides.tiling import tile_cohort

    (ws / "s0.svs").symlink_to(CMU1)
    csv = _manifest(ws / "slides.csv", [("s0", ws / "s0.svs")])
    out = ws / "tiles" / "c"
    code = (f"from histcode.slides.config import TileConfig\nfrom histcode.slides import tiling\nimport time\n"
            f"orig = tiling.run_jobs\ndef slow(*a, **k):\n    print('working', flush=True); time.sleep(30)\n"
            f"tiling.run_jobs = slow\ntiling.tile_cohort({str(csv)!r}, {str(out)!r}, TileConfig(), workers=0, "
            f"progress=False)\n")
    first = subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    first.stdout.readline()
    try:
        tile_cohort(csv, out, TileConfig(), workers=0, progress=False)
        saw = "second run went ahead"
    except OutputError as exc:
        saw = one_line(exc)
    finally:
        first.kill()
        first.wait()
    results = tile_cohort(csv, out, TileConfig(), workers=0, progress=False)
    return Row(saw, "yes (rerun after the first ended: done)" if results[0].status == "done" else "NO",
               "none" if not tmp_files(out) else "temp files")


@case("fixed", "read-only tiles folder")
def read_only(ws: Path) -> Row:
    from histcode.preflight import OutputError
    from histcode.slides.config import TileConfig
    from histcode.slides.tiling import tile_cohort

    (ws / "s0.svs").symlink_to(CMU1)
    csv = _manifest(ws / "slides.csv", [("s0", ws / "s0.svs"), ("s1", ws / "s0.svs")])
    out = ws / "tiles" / "c"
    out.mkdir(parents=True)
    root = os.geteuid() == 0
    subprocess.run(["chattr", "+i", str(out)], check=True) if root else out.chmod(0o555)
    t0 = time.monotonic()
    try:
        tile_cohort(csv, out, TileConfig(), workers=0, progress=False)
        saw = "no error"
    except OutputError as exc:
        saw = one_line(exc)
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True) if root else out.chmod(0o755)
    return Row(f"{saw} (after {time.monotonic() - t0:.2f} s, before any slide)", "n/a (nothing can be written)",
               "none")


@case("fixed", "empty cohort (sheet rows, no slide files)")
def empty_cohort(ws: Path) -> Row:
    from histcode.cohort.stage import run_ingest
    from histcode.preflight import EmptyCohortError

    sheet = ws / "sheet.tsv"
    sheet.write_text("\t".join(["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID",
                                "Sample ID", "Sample Type"]) + "\n" + "\t".join(
        ["f1", "TCGA-AA-0001-01A-01-TS1.x.svs", "Biospecimen", "Slide Image", "TCGA-X", "TCGA-AA-0001",
         "TCGA-AA-0001-01A", "Primary Tumor"]) + "\n")
    params = {"base": {"cohorts": {"e": {"kind": "gdc", "source_dir": ".", "slide_dir": "slides",
                                         "slide_sheet": str(sheet)}}}, "ingest": {"progress": False}}
    try:
        run_ingest("e", params)
        saw = "exit 0"
    except EmptyCohortError as exc:
        saw = one_line(exc)
    return Row(saw, "n/a (stops at ingest, not at 'AUC nan')", "none (failures.csv written)")


# ---------------------------------------------------------------- sheets (ingest) --------------------------
def _sheet_case(text: str) -> Callable[[Path], Row]:
    def run(ws: Path) -> Row:
        from histcode.cohort.config import IngestConfig
        from histcode.cohort.ingest import ingest_cohort
        from histcode.config import CohortConfig

        (ws / "sheet.tsv").write_text(text)
        cohort = CohortConfig(kind="gdc", source_dir=ws, slide_dir=ws / "slides", slide_sheet=ws / "sheet.tsv")
        try:
            ingest_cohort("c", cohort, IngestConfig(progress=False), out_dir=ws / "out")
            return Row("accepted", "-", "-")
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            return Row("refused: " + " / ".join(x.strip() for x in lines[:2])[:150], "n/a (input refused)",
                       "none (no manifest written)" if not (ws / "out" / "slides.csv").exists() else "manifest written")

    return run


_HEADER = ["File ID", "File Name", "Data Category", "Data Type", "Project ID", "Case ID", "Sample ID", "Sample Type"]
_ROW = "f1\tTCGA-AA-0001-01A-01-TS1.svs\tBiospecimen\tSlide Image\tTCGA-X\tTCGA-AA-0001\tTCGA-AA-0001-01A\n"
case("good", "sheet missing a column")(_sheet_case("\t".join(_HEADER[:-1]) + "\n" + _ROW))
case("good", "sheet that is not a TSV (binary)")(_sheet_case("\x89PNG\r\n\x1a\n\x00\x00garbage"))


@case("fixed", "normal barcode (-11A) labelled Primary Tumor")
def barcode_mismatch(ws: Path) -> Row:
    from histcode.cohort.config import IngestConfig
    from histcode.cohort.ingest import ingest_cohort
    from histcode.config import CohortConfig

    names = ["TCGA-AA-0001-01A-01-TS1.a.svs", "TCGA-AA-0001-11A-01-TS1.b.svs"]
    (ws / "slides").mkdir()
    for n in names:
        (ws / "slides" / n).symlink_to(CMU1)
    rows = [["f1", names[0], "Biospecimen", "Slide Image", "TCGA-X", "TCGA-AA-0001", "TCGA-AA-0001-01A",
             "Primary Tumor"],
            ["f2", names[1], "Biospecimen", "Slide Image", "TCGA-X", "TCGA-AA-0001", "TCGA-AA-0001-11A",
             "Primary Tumor"]]
    (ws / "sheet.tsv").write_text("\n".join("\t".join(r) for r in [_HEADER, *rows]) + "\n")
    cohort = CohortConfig(kind="gdc", source_dir=ws, slide_dir=ws / "slides", slide_sheet=ws / "sheet.tsv")
    res = ingest_cohort("c", cohort, IngestConfig(progress=False), out_dir=ws / "out")
    fails = res.failures[res.failures["kind"] == "sample_type_mismatch"]
    return Row(f"recorded in failures.csv: {one_line(fails['reason'].iloc[0])}" if len(fails) else "ingested as tumour",
               "yes (the -01A slide ingested)" if len(res.slides) == 1 else "NO", "none")


@case("fixed", "one slide file under two patients")
def one_file_two_patients(ws: Path) -> Row:
    from histcode.cohort.config import IngestConfig
    from histcode.cohort.ingest import ingest_cohort
    from histcode.config import CohortConfig

    (ws / "slides").mkdir()
    names = ["TCGA-AA-0001-01A-01-TS1.a.svs", "TCGA-AA-0002-01A-01-TS1.b.svs", "TCGA-AA-0003-01A-01-TS1.c.svs"]
    (ws / "slides" / names[0]).symlink_to(CMU1)
    (ws / "slides" / names[1]).write_bytes(CMU1.read_bytes())  # the same bytes under another patient's name
    own_copy(ws / "slides" / names[2])
    rows = [[f"f{i}", n, "Biospecimen", "Slide Image", "TCGA-X", n[:12], n[:16], "Primary Tumor"]
            for i, n in enumerate(names)]
    (ws / "sheet.tsv").write_text("\n".join("\t".join(r) for r in [_HEADER, *rows]) + "\n")
    cohort = CohortConfig(kind="gdc", source_dir=ws, slide_dir=ws / "slides", slide_sheet=ws / "sheet.tsv")
    res = ingest_cohort("c", cohort, IngestConfig(progress=False), out_dir=ws / "out")
    fails = res.failures[res.failures["kind"] == "duplicate_conflict"]
    return Row(f"recorded in failures.csv: {one_line(fails['reason'].iloc[0])}" if len(fails) else
               "both ingested (one image on both sides of a patient-level split)",
               "yes (the third slide ingested)" if res.slides["patient_id"].tolist() == ["TCGA-AA-0003"] else "NO",
               "none (both copies in failures.csv; before round 25 both were ingested: one image under two patients, "
               "on both sides of a patient-level split)")


# ---------------------------------------------------------------- expression -------------------------------
def _expression_cohort(ws: Path) -> tuple[dict[str, Any], Path]:
    genes = EXPR.GENES
    header = "\t".join(_HEADER)
    slides, rna = [header], [header]
    (ws / "slides").mkdir()
    for pid, (tum, nor) in {"0001": (30.0, 3.0), "0002": (1.0, 8.0), "0004": (None, None)}.items():
        for code, v, st in (("01A", tum, "Primary Tumor"), ("11A", nor, "Solid Tissue Normal")):
            name = f"TCGA-ZZ-{pid}-{code}-01-TS1.svs"
            if pid == "0004" and code == "11A":
                continue
            own_copy(ws / "slides" / name)
            slides.append("\t".join([f"s{pid}{code}", name, "Biospecimen", "Slide Image", "TCGA-X", f"TCGA-ZZ-{pid}",
                                     f"TCGA-ZZ-{pid}-{code}", st]))
            if v is None:
                continue
            fid = f"r{pid}{code}"
            fname = f"{fid}.rna_seq.augmented_star_gene_counts.tsv"
            rows = [(genes["CD3D"], "CD3D", 2.0)] + ([] if fid == "r000211A" else [(genes["TP53"], "TP53", v)])
            EXPR.write_star(ws / "rna" / fid / fname, rows)
            rna.append("\t".join([fid, fname, "Transcriptome Profiling", "Gene Expression Quantification",
                                  "TCGA-X", f"TCGA-ZZ-{pid}", f"TCGA-ZZ-{pid}-{code}", st]))
    (ws / "slides.tsv").write_text("\n".join(slides) + "\n")
    (ws / "rna.tsv").write_text("\n".join(rna) + "\n")
    params = {"base": {"train_cohort": "zz", "cohorts": {"zz": {
        "kind": "gdc", "source_dir": str(ws), "slide_dir": str(ws / "slides"), "slide_sheet": str(ws / "slides.tsv"),
        "rna_dir": str(ws / "rna"), "rna_sheet": str(ws / "rna.tsv")}}},
        "ingest": {"progress": False}, "expression": {"n_driver_genes": 1, "markers": ["CD3D"], "progress": False}}
    from histcode.cohort.stage import run_ingest
    from histcode.expression.stage import run_de_targets

    run_ingest("zz", params)
    run_de_targets(params)
    return params, ws / "data" / "expression" / "zz"


@case("fixed", "gene missing from one STAR file")
def gene_missing(ws: Path) -> Row:
    _, out = _expression_cohort(ws)
    panel = pd.read_csv(out / "panel.csv").set_index("gene")
    fc = pd.read_parquet(out / "log10_fc.parquet")
    kept = "TP53" in fc.columns and fc["TP53"].notna().sum() == 1
    return Row(f"panel.csv: TP53 '{panel.loc['TP53', 'status'][:40]}', file named "
               f"{Path(panel.loc['TP53', 'missing_in']).name}", "yes (TP53 kept for the other pair)" if kept else "NO",
               "none (only that pair lacks TP53)" if kept else "gene dropped")


@case("fixed", "patient with slides but no RNA-seq")
def slide_only(ws: Path) -> Row:
    _, out = _expression_cohort(ws)
    ex = pd.read_csv(out / "excluded_patients.csv").set_index("patient_id")["reason"]
    listed = "TCGA-ZZ-0004" in ex.index
    return Row(f"excluded_patients.csv: TCGA-ZZ-0004 '{ex.get('TCGA-ZZ-0004', 'absent')}'", "yes", "none"
               if listed else "patient silently absent")


# ---------------------------------------------------------------- config ----------------------------------
def _config_case(script: str, section: str, key: str, value: Any, drop: str | None = None) -> Callable[[Path], Row]:
    def run(ws: Path) -> Row:
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        if drop:
            params[section].pop(drop)
        params[section][key] = value
        (ws / "params.yaml").write_text(yaml.safe_dump(params))
        args = ["--cohort", "tcga_synth"] if script == "tile.py" else []
        proc = subprocess.run([sys.executable, str(ROOT / "pipelines" / script), "--params", "params.yaml", *args],
                              cwd=ws, env={**ENV, "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow.db'}"},
                              capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        return Row(f"exit {proc.returncode}, {len(lines)} line(s): {lines[-1][:140] if lines else ''}",
                   "n/a (refused before work)", "none")

    return run


case("fixed", "params typo tile.tile_pxx")(_config_case("tile.py", "tile", "tile_pxx", 256, drop="tile_px"))
case("fixed", "params tile.tile_px: '256px'")(_config_case("tile.py", "tile", "tile_px", "256px"))
case("fixed", "params mil.pooling: attention")(_config_case("train_mil.py", "mil", "pooling", "attention"))


# ---------------------------------------------------------------- features --------------------------------
def _feature_project(ws: Path, n: int = 3, whole: bool = False) -> dict[str, Any]:
    from histcode.io.coords import write_coords
    from histcode.slides.reader import SlideReader

    rows = []
    for i in range(n):
        link = ws / "slides" / f"s{i}.svs"
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(CMU1)
        with SlideReader(link) as r:
            mpp, (w, h) = r.mpp, r.dimensions
        size = round(256 * 0.5 / mpp)
        coords = np.array([((w - 3 * size) // 2 + a * size, (h - 3 * size) // 2 + b * size) for b in range(3)
                           for a in range(3)], np.int32)
        if whole:  # every tile of the slide's grid, as tiling a tissue-filled slide gives
            coords = np.array([(a, b) for b in range(0, h - size, size) for a in range(0, w - size, size)], np.int32)
        write_coords(ws / f"data/tiles/c/s{i}.h5", coords, {"patch_size": size, "patch_level": 0,
                                                          "downsample": [1.0, 1.0], "level_dim": [w, h],
                                                          "target_mpp": 0.5, "tile_px": 256, "slide_mpp": mpp})
        rows.append({"slide_id": f"s{i}", "path": str(link), "patient_id": f"p{i}", "cohort": "c",
                     "sample_type": "tumor", "label": 1, "mpp": None})
    (ws / "data/manifests/c").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(ws / "data/manifests/c/slides.csv", index=False)
    return {"base": {"seed": 1, "train_cohort": "c", "cohorts": {"c": {"kind": "barcode", "source_dir": "slides",
                                                                       "slide_dir": "slides"}}},
            "extract": {"encoders": ["random"], "input_px": 32, "batch_size": 4, "workers": 0, "threads": 1,
                        "dtype": "float16", "bf16": False, "stain": False, "progress": False}}


@case("fixed", "disk full (ENOSPC) during extraction")
def disk_full(ws: Path) -> Row:
    from histcode.features.stage import run_extract
    from histcode.io import features as store
    from histcode.preflight import OutputError

    params = _feature_project(ws)
    real = store.FeatureWriter.write

    def write(self: Any, features: Any, coords: Any) -> None:
        if self.path.stem != "s0":
            raise OSError(errno.ENOSPC, "Can't write data (file write failed: errno = 28, error message = "
                                        "'No space left on device')")
        real(self, features, coords)

    store.FeatureWriter.write = write  # type: ignore[method-assign]
    try:
        run_extract(params, cohort="c")
        saw = "exit 0"
    except OutputError as exc:
        saw = one_line(exc)
    finally:
        store.FeatureWriter.write = real  # type: ignore[method-assign]
    out = ws / "data/features/c/random"
    kept = sorted(p.stem for p in out.glob("*.h5"))
    metrics = run_extract(params, cohort="c")
    return Row(saw, f"finished slide kept {kept}; after freeing space the rerun did {metrics['random/slides_done']} "
               f"and skipped {metrics['random/slides_skipped']}", "none" if not tmp_files(ws) else "temp files left")


@case("fixed", "one corrupt JPEG tile inside a slide (tiling)")
def corrupt_jpeg_tile_tiling(ws: Path) -> Row:
    """The same damage met at segmentation, which reads the whole slide: before, the read and so the slide failed."""
    import tifffile

    from histcode.slides.config import TileConfig
    from histcode.slides.tiling import tile_cohort

    with tifffile.TiffFile(CMU1) as tif:
        start, length = (int(v[len(v) // 2]) for v in (tif.pages[0].dataoffsets, tif.pages[0].databytecounts))
    blob = bytearray(CMU1.read_bytes())
    blob[start + length // 3: start + length] = b"\xff\xd9" + b"\x5a" * (length - length // 3 - 2)
    (ws / "s0.svs").write_bytes(bytes(blob))
    (ws / "s1.svs").symlink_to(CMU1)
    csv = _manifest(ws / "slides.csv", [("s0", ws / "s0.svs"), ("s1", ws / "s1.svs")])
    res = {r.slide: r for r in tile_cohort(csv, ws / "tiles", TileConfig(), workers=0, progress=False)}
    bad, good = res["s0"], res["s1"]
    return Row(f"s0 {bad.status}: {one_line(bad.reason)[:220]}", f"yes (s1 {good.status}, {good.n_tiles} tiles)",
               f"{good.n_tiles - bad.n_tiles} of {good.n_tiles} tiles of the damaged slide (those over the bad tile)")


@case("fixed", "one corrupt JPEG tile inside a slide (extraction)")
def corrupt_jpeg_tile(ws: Path) -> Row:
    """As some TCGA SVS files: one JPEG tile ends early ("Corrupt JPEG data: premature end of data segment")."""
    import tifffile

    from histcode.features.stage import run_extract
    from histcode.io.coords import read_coords

    params = _feature_project(ws, whole=True)
    with tifffile.TiffFile(CMU1) as tif:
        start, length = (int(v[len(v) // 2]) for v in (tif.pages[0].dataoffsets, tif.pages[0].databytecounts))
    blob = bytearray(CMU1.read_bytes())
    blob[start + length // 3: start + length] = b"\xff\xd9" + b"\x5a" * (length - length // 3 - 2)
    (ws / "slides" / "s1.svs").unlink()
    (ws / "slides" / "s1.svs").write_bytes(bytes(blob))
    metrics = run_extract(params, cohort="c")
    fails = pd.read_csv(ws / "data/features/c/random/failures.csv").set_index("slide_id")
    n = len(read_coords(ws / "data/tiles/c/s1.h5")[0])
    bad = int(fails.loc["s1", "n_failed_tiles"]) if "s1" in fails.index else 0
    return Row(f"s1 {fails.loc['s1', 'status'] if 's1' in fails.index else 'done'}: {bad}/{n} tile reads failed "
               f"({one_line(str(fails.loc['s1', 'reason']))[:110]})", f"yes ({metrics['random/slides_done']} done, "
               f"{metrics['random/slides_partial']} partial)", f"{bad} of {n} tiles of the damaged slide")


# ---------------------------------------------------------------- pretraining -----------------------------
PRETRAIN = """
import os, signal, sys, torch
from histcode.ssl import trainer
from histcode.ssl.config import PretrainConfig
from histcode.ssl.data import TensorTiles
SMALL = dict(backbone="resnet18_trunc", input_px=32, read_px=40, epochs=3, batch_size=8, tiles_per_slide=0.5,
             bank_size=16, proj_hidden=32, proj_dim=8, workers=0, threads=1, progress=False, log_every=1)
g = torch.Generator().manual_seed(0)
ds = TensorTiles((torch.rand(48, 3, 40, 40, generator=g) * 255).to(torch.uint8), [16, 16, 16])
kill_at = int(sys.argv[2])
real_save = trainer.save_checkpoint
def save(path, state):
    real_save(path, state)
    if state["epoch"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # deterministic point: right after epoch `kill_at` is saved
trainer.save_checkpoint = save
res = trainer.fit(PretrainConfig(**SMALL), ds, ds.n_tiles, seed=3, checkpoint=sys.argv[1], resume="auto")
torch.save(res.method.state_dict(), sys.argv[3])
"""


@case("good", "SIGKILL during pretraining, rerun (default resume)")
def kill_pretrain(ws: Path) -> Row:
    import torch

    (ws / "p.py").write_text(PRETRAIN)
    subprocess.run([sys.executable, "p.py", str(ws / "ref.pt"), "0", str(ws / "ref_state.pt")], env=ENV, check=True)
    killed = subprocess.run([sys.executable, "p.py", str(ws / "ck.pt"), "1", str(ws / "state.pt")], env=ENV)
    resumed = subprocess.run([sys.executable, "p.py", str(ws / "ck.pt"), "0", str(ws / "state.pt")], env=ENV,
                             capture_output=True, text=True)
    a, b = torch.load(ws / "ref_state.pt"), torch.load(ws / "state.pt")
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return Row(f"killed (rc {killed.returncode}) after epoch 1/3; rerun resumed (rc {resumed.returncode})", "yes",
               "none (weights bit-identical to an uninterrupted run)" if same else "DIFFERS")


@case("fixed", "pretraining where every tile read fails")
def unreadable_pretrain(ws: Path) -> Row:
    import torch

    from histcode.ssl.config import PretrainConfig
    from histcode.ssl.data import TensorTiles
    from histcode.ssl.trainer import TileReadError, fit

    class Unreadable(TensorTiles):
        def __getitem__(self, i: int) -> Any:  # type: ignore[override]
            return self.tiles[i], "slides/x.svs: file not found"

    ds = Unreadable(torch.zeros(32, 3, 40, 40, dtype=torch.uint8), [16, 16])
    cfg = PretrainConfig(backbone="resnet18_trunc", input_px=32, read_px=40, epochs=1, batch_size=8, bank_size=16,
                         proj_hidden=32, proj_dim=8, workers=0, threads=1, progress=False)
    try:
        fit(cfg, ds, ds.n_tiles, seed=1, checkpoint=ws / "c.pt")
        saw = "exit 0, encoder trained on blanks"
    except TileReadError as exc:
        saw = one_line(exc)
    return Row(saw, "n/a", "none (no checkpoint, no encoder registered)" if not (ws / "c.pt").exists() else "saved")


# ---------------------------------------------------------------- registry --------------------------------
X = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")


def _evidence(noise: float, seed: int = 0, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(123)
    y = rng.integers(0, 2, n)
    s = y + np.random.default_rng(seed).normal(0, noise, n)
    return pd.DataFrame({"id": [f"s{i}" for i in range(n)], "label": y, "prob": 1 / (1 + np.exp(-s))})


def _model(seed: int) -> Any:
    import torch

    from histcode.mil.model import build_mil

    torch.manual_seed(seed)
    return build_mil({"pooling": "gated_attention", "in_dim": 4, "hidden": 8, "attn_hidden": 4}).eval()


def _register(name: str, seed: int, noise: float | None, **tags: str) -> str:
    from histcode import tracking
    from histcode.registry import log_and_register
    from histcode.registry.evidence import attach_evidence

    with tracking.start_run("fault", run_name=f"{name}-{seed}", stage="fault"):
        mv = log_and_register(_model(seed), name, input_example=X, tags=tags)
    if noise is not None:
        attach_evidence(name, mv.version, _evidence(noise, seed), kind="binary")
    return str(mv.version)





def _gate() -> Any:
    from histcode.registry.gate import GateConfig

    return GateConfig(thresholds={"histcode-mil": 0.6, "histcode-encoder": 0.6}, bootstrap=200, seed=0)


@case("good", "worse MIL challenger")
def worse_mil(ws: Path) -> Row:
    from histcode.registry import CHAMPION, get_version
    from histcode.registry.promotion import promote_pair

    e1 = _register("histcode-encoder", 1, 0.3)
    _register("histcode-mil", 2, 0.3, encoder_version=f"histcode-encoder/{e1}")
    promote_pair(_gate())
    champ = get_version("histcode-mil", CHAMPION).version
    _register("histcode-mil", 3, 0.6, encoder_version=f"histcode-encoder/{e1}")  # good, but worse
    d = promote_pair(_gate())["histcode-mil"]
    return Row(f"kept champion: {d.reason[:120]}", "yes", f"none (champion v{champ} unchanged)"
               if get_version("histcode-mil", CHAMPION).version == champ else "champion moved")


@case("fixed", "weak MIL experiment rewrites encoder evidence")
def evidence_overwrite(ws: Path) -> Row:
    from histcode.registry.evidence import EvidenceExists, attach_evidence, load_evidence

    e1 = _register("histcode-encoder", 1, 0.3)
    before, _ = load_evidence("histcode-encoder", e1)
    try:
        attach_evidence("histcode-encoder", e1, _evidence(5.0, 9), kind="binary")
        saw = "overwritten"
    except EvidenceExists as exc:
        saw = one_line(exc)
    after, _ = load_evidence("histcode-encoder", e1)
    return Row(saw, "yes", "none (v1 evidence unchanged)" if after.equals(before) else "EVIDENCE CHANGED")


@case("fixed", "1-epoch encoder v2 vs champion pair")
def encoder_without_mil(ws: Path) -> Row:
    from histcode.registry import CHAMPION, get_version
    from histcode.registry.promotion import promote_pair

    e1 = _register("histcode-encoder", 1, 0.3)
    _register("histcode-mil", 2, 0.3, encoder_version=f"histcode-encoder/{e1}")
    promote_pair(_gate())
    _register("histcode-encoder", 3, 0.05)  # "better" evidence, but no MIL model was trained on its features
    d = promote_pair(_gate())["histcode-encoder"]
    pair = (get_version("histcode-encoder", CHAMPION).version, get_version("histcode-mil", CHAMPION).version)
    return Row(f"refused: {d.reason[:130]}", "yes", f"none (champions stay the pair encoder v{pair[0]} + MIL "
               f"v{pair[1]})")


@case("fixed", "`make eval-cptac` with a mismatched pair")
def eval_mismatch(ws: Path) -> Row:
    import mlflow

    from histcode.evaluation.champion_external import evaluate_external
    from histcode.registry import CHAMPION, RegistryError

    e1 = _register("histcode-encoder", 1, None)
    m1 = _register("histcode-mil", 2, None, encoder_version="histcode-encoder/7")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("histcode-encoder", CHAMPION, e1)
    client.set_registered_model_alias("histcode-mil", CHAMPION, m1)
    (ws / "params.yaml").write_text(yaml.safe_dump({"base": {"cohorts": {"ext": {
        "kind": "cptac", "source_dir": "x", "slide_dir": "x", "role": "external"}}}}))
    try:
        evaluate_external("params.yaml", "ext")
        saw = "exit 0 with metrics"
    except RegistryError as exc:
        saw = one_line(exc)
    return Row(saw, "n/a (refused before extraction)", "none")


@case("fixed", "replaced weights in the artifact store")
def tampered(ws: Path) -> Row:
    from safetensors.torch import load_file, save_file

    from histcode.registry import RegistryError, load_model

    _register("histcode-mil", 3, 0.3)
    (weights,) = list(ws.rglob("weights.safetensors"))
    save_file({k: t + 1 for k, t in load_file(str(weights)).items()}, str(weights))
    try:
        load_model("histcode-mil", "challenger")
        saw = "loaded the replaced weights"
    except RegistryError as exc:
        saw = one_line(exc)
    return Row(saw, "n/a", "none (nothing loaded)")


class _Payload:
    """A pickle whose unpickling writes a marker file: proof of code execution if it is ever loaded."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (Path(os.environ["FAULT_MARKER"]), "payload ran"))


@case("fixed", "pickle payload in a registered version")
def pickle_payload(ws: Path) -> Row:
    import mlflow
    import torch

    from histcode import tracking
    from histcode.registry import RegistryError, load_model

    marker = ws / "PWNED"
    os.environ["FAULT_MARKER"] = str(marker)
    model = _model(1)
    model.meta["x"] = _Payload()  # rides along in an old-style pickled model
    with tracking.start_run("fault", run_name="legacy", stage="fault"):
        info = mlflow.pytorch.log_model(model, name="mil", serialization_format="pickle",
                                        registered_model_name="histcode-mil",
                                        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    version = str(info.registered_model_version)
    try:
        load_model("histcode-mil", version=version)
        saw = "loaded"
    except RegistryError as exc:
        saw = one_line(exc)
    ran_here = marker.exists()
    mlflow.pytorch.load_model(f"models:/histcode-mil/{version}")  # the old loader, for comparison
    return Row(saw, "n/a", ("none (payload never ran" if not ran_here else "PAYLOAD RAN (") +
               ("; the old mlflow.pytorch loader runs it)" if marker.exists() else ")"))


# ---------------------------------------------------------------- DVC -------------------------------------
STAGE = """
import os, signal, time
from pathlib import Path
from histcode.atomic import write_text
out = Path("out"); out.mkdir(exist_ok=True)
kill_after, pause = int(os.environ.get("KILL_AFTER", "-1")), float(os.environ.get("PAUSE", "0"))
for i in range(5):
    target = out / f"item{i}.txt"
    if target.exists():
        continue
    if i == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(pause)
    write_text(target, f"item {i}\\n")
    print("wrote", i, flush=True)
"""


def _dvc_project(ws: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    dvc = str(Path(sys.executable).parent / "dvc")
    env = {**ENV, "DVC_SITE_CACHE_DIR": str(ws / "site-cache")}

    def run(*args: str, extra: dict[str, str] | None = None, bg: bool = False) -> Any:
        cmd = [dvc, *args]
        if bg:
            return subprocess.Popen(cmd, cwd=ws, env={**env, **(extra or {})}, stdout=subprocess.PIPE, text=True)
        return subprocess.run(cmd, cwd=ws, env={**env, **(extra or {})}, capture_output=True, text=True)

    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    run("init", "-q")
    (ws / "stage.py").write_text(STAGE)
    (ws / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"work": {
        "cmd": f"{sys.executable} stage.py", "deps": ["stage.py"], "outs": [{"out": {"persist": True}}]}}}))
    return run


@case("fixed", "SIGKILL inside `dvc repro` (persisted outputs)")
def dvc_kill(ws: Path) -> Row:
    run = _dvc_project(ws)
    run("repro", extra={"KILL_AFTER": "2"})
    at_kill = sorted(p.name for p in (ws / "out").iterdir())
    resumed = run("repro")
    status = run("status")
    redone = "wrote 0" in resumed.stdout
    clean = "up to date" in status.stdout
    return Row(f"killed with {len(at_kill)}/5 items; `dvc repro` resumed ({'redid item 0' if redone else 'kept them'}"
               f"); `dvc status`: {status.stdout.strip()[:40]}", "yes" if resumed.returncode == 0 else "NO",
               "none (no .tmp, outputs clean)" if clean and not tmp_files(ws / "out") else "dirty")


@case("good", "two `dvc repro` at once")
def dvc_twice(ws: Path) -> Row:
    run = _dvc_project(ws)
    first = run("repro", extra={"PAUSE": "2"}, bg=True)
    assert first.stdout is not None
    for line in first.stdout:  # the first run holds DVC's lock once its stage is writing
        if "wrote" in line:
            break
    second = run("repro")
    first.wait()
    lines = [ln for ln in (second.stderr + second.stdout).splitlines() if ln.strip()]
    msg = next((ln for ln in lines if "ERROR" in ln or "lock" in ln.lower()), lines[-1] if lines else "")
    return Row(f"second: exit {second.returncode}: {msg.strip()[:120]}", "yes (first finished)"
               if first.returncode == 0 else "NO", "none" if len(list((ws / "out").iterdir())) == 5 else "partial")


@case("good", "`make ui` binding")
def make_ui(ws: Path) -> Row:
    text = (ROOT / "Makefile").read_text()
    ui = text[text.index("\nui:"):].split("\n\n")[0]
    return Row("Makefile ui: --host 127.0.0.1" if "--host 127.0.0.1" in ui else "binds elsewhere",
               "n/a (static check of the command)", "n/a")


# ---------------------------------------------------------------- main ------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run cases whose name contains this")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for the README)")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)
    rows = []
    for group, name, fn in CASES:
        if args.only and args.only not in name:
            continue
        t0 = time.monotonic()
        with workspace() as ws:
            try:
                row = fn(ws)
            except Exception as exc:  # a case that crashes is itself a finding: shown, the catalogue goes on
                row = Row(f"CASE CRASHED: {type(exc).__name__}: {one_line(exc)}", "?", "?")
                traceback.print_exc()
            row = Row(*(text.replace(f"{ws}/", "").replace(str(ws), ".") for text in (row.saw, row.rest, row.lost)))
        rows.append((group, name, row, time.monotonic() - t0))
        print(f"[{time.monotonic() - t0:5.1f} s] {name}: {row.saw}", file=sys.stderr, flush=True)
    head = ("kind", "case", "what the user saw", "rest completed", "lost/corrupt")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for group, name, row, _ in rows:
            cells = (group, name, row.saw, row.rest, row.lost)
            print("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    else:
        for group, name, row, _ in rows:
            print(f"{group:5} | {name:48} | {row.saw} | {row.rest} | {row.lost}")
    return 0 if all("CRASHED" not in r.saw for _, _, r, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
