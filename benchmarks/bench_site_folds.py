"""Site-preserved folds (``mil.cv_groups: site``) against Howard et al.'s PreservedSiteCV on the same patients.

Both put whole tissue source sites into test folds and balance the per-fold patient counts of each stratum.
PreservedSiteCV solves it exactly as a mixed-integer quadratic program with IBM CPLEX (its
``preservedsite.crossfolds.generate``, objective Σ_strata Σ_folds (k·n_fold,stratum − n_stratum)²); histcode deals
sites greedily, largest first. This reports, for each, that objective, the per-fold counts, whether every site
sits in one fold, and the time (histcode in-process; the peer as a whole process, its import of cvxpy/CPLEX
included, and the solve alone as the peer prints it). The peer runs from its own checkout and venv (pandas,
numpy, cvxpy, cplex; not project dependencies).

    python benchmarks/bench_site_folds.py --peer-dir ../peer/PreservedSiteCV \\
        --peer-python ../peer/psite-venv/bin/python --out benchmarks/results/bench_site_folds_lusc.json

Patients: the real TCGA-LUSC slide sample sheet in ``tests/data/`` (``--sheet`` for another GDC sheet).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from histcode.atomic import write_json
from histcode.cohort.splits import make_patient_splits, patient_strata, site_groups

ROOT = Path(__file__).resolve().parents[1]
SHEET = ROOT / "tests" / "data" / "tcga_lusc_slides_gdc_sample_sheet.2023-08-14.tsv"

# Run in the peer's venv: its own generate() on a patients CSV, the fold per patient written back.
PEER_DRIVER = """
import sys, time
import pandas as pd
sys.path.insert(0, sys.argv[1])
import preservedsite.crossfolds as cv
data = pd.read_csv(sys.argv[2], dtype=str)
t = time.perf_counter()
out = cv.generate(data, "stratum", sorted(data["stratum"].unique()), crossfolds=int(sys.argv[4]),
                  target_column="fold", patient_column="patient_id", site_column="site",
                  timelimit=float(sys.argv[5]), randomseed=0)
print(f"SOLVE_S {time.perf_counter() - t:.3f}")
out[["patient_id", "fold"]].to_csv(sys.argv[3], index=False)
"""


def _cohort(sheet: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sheet as a slides manifest, and one row per patient: stratum ('0', '1', '0+1') and site."""
    s = pd.read_csv(sheet, sep="\t")
    manifest = pd.DataFrame({"slide_id": s["File Name"], "patient_id": s["Case ID"].astype(str),
                             "label": (s["Sample Type"] == "Primary Tumor").astype(int)})
    strata = patient_strata(manifest)
    sites = site_groups(manifest, sheet.stem)
    return manifest, pd.DataFrame({"patient_id": strata.index, "stratum": strata.to_numpy(),
                                   "site": [sites[p] for p in strata.index]})


def _score(patients: pd.DataFrame, fold: pd.Series, k: int) -> dict:
    """Howard et al.'s objective, per-fold counts per stratum and whether sites are whole."""
    df = patients.assign(fold=patients["patient_id"].map(fold))
    counts = pd.crosstab(df["fold"], df["stratum"]).reindex(columns=sorted(df["stratum"].unique()), fill_value=0)
    totals = df["stratum"].value_counts()
    objective = float(sum(((k * counts[c] - totals[c]) ** 2).sum() for c in counts.columns))
    return {"objective": objective, "fold_patients": counts.sum(axis=1).astype(int).tolist(),
            "fold_counts": {c: counts[c].astype(int).tolist() for c in counts.columns},
            "sites_whole": bool(df.groupby("site")["fold"].nunique().max() == 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sheet", type=Path, default=SHEET)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--peer-dir", type=Path, help="PreservedSiteCV checkout (not a project dependency)")
    ap.add_argument("--peer-python", type=Path, help="python of a venv with pandas, numpy, cvxpy and cplex")
    ap.add_argument("--timelimit", type=float, default=100.0, help="the peer's solver time limit (its default)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    manifest, patients = _cohort(args.sheet)
    groups = dict(zip(patients["patient_id"], patients["site"], strict=True))
    t = time.perf_counter()
    splits = make_patient_splits(manifest, args.folds, 0.1, None, args.seed, groups=groups)
    ours_s = time.perf_counter() - t
    test = splits[splits["split"] == "test"].set_index("patient_id")["fold"]
    result: dict = {"sheet": args.sheet.name, "patients": len(patients), "sites": int(patients["site"].nunique()),
                    "folds": args.folds, "strata": patients["stratum"].value_counts().to_dict(),
                    "histcode": {**_score(patients, test, args.folds), "seconds": round(ours_s, 4)}}
    if args.peer_dir and args.peer_python:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "patients.csv", Path(tmp) / "folds.csv"
            patients.to_csv(src, index=False)
            t = time.perf_counter()
            proc = subprocess.run([str(args.peer_python), "-c", PEER_DRIVER, str(args.peer_dir.resolve()), str(src),
                                   str(dst), str(args.folds), str(args.timelimit)],
                                  capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                sys.exit(f"PreservedSiteCV failed ({proc.returncode}): {proc.stderr[-2000:]}")
            solve = next(float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("SOLVE_S"))
            peer = pd.read_csv(dst, dtype=str).set_index("patient_id")["fold"].astype(int) - 1
        result["peer"] = {"name": "fmhoward/PreservedSiteCV (CPLEX MIQP)", **_score(patients, peer, args.folds),
                          "seconds_process": round(wall, 2), "seconds_solve": solve,
                          "timelimit_s": args.timelimit}
        result["objective_ratio_histcode_to_peer"] = (
            round(result["histcode"]["objective"] / result["peer"]["objective"], 3)
            if result["peer"]["objective"] else None)
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
