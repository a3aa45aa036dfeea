"""HistCode's CLAM-SB training against CLAM's own ``main.py``, side by side on the same features and folds.

The peer runs from its own checkout and venv (``--clam-dir``, ``--clam-python``; not a project dependency).
Both train CLAM-SB with the same settings: CLAM's "small" sizes (features → 512 → gated attention 256),
cross-entropy bag and instance losses (CLAM's smooth-SVM needs a package outside PyPI), B = 8, bag weight
0.7, Adam with the project's ``mil.lr`` / ``mil.weight_decay`` / ``mil.dropout``, ``--epochs`` epochs on
every fold (CLAM without early stopping; HistCode with ``min_epochs = max_epochs``, so both do the same
number of steps, HistCode testing its best-validation epoch, CLAM its last), no bag augmentation. The
project's cohort is exported once into CLAM's layout (``dataset_csv/``, ``pt_files/``, ``splits/``: the
patient-level train/val/test folds of ``data/splits``). Then the two whole processes run in turn, ``--pairs``
times (A B A B), and we report median wall times, their ratio, and each side's out-of-fold ROC-AUC pooled
over the folds' test slides (and per fold) from its own per-slide probabilities. Usage:

    python benchmarks/bench_mil_vs_clam.py --clam-dir ../peer/CLAM --clam-python ../peer/clam-venv/bin/python \\
        --work /tmp/milclam --pairs 3 --out benchmarks/results/bench_mil_vs_clam.json

``--threads 1`` pins both sides to one torch thread in one process (work per core); by default each runs as it
does out of the box (CLAM: torch's default threads; HistCode: ``mil.workers`` fold processes of
``mil.threads`` threads).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

TASK_CSV = "dataset_csv/tumor_vs_normal_dummy_clean.csv"  # main.py's hard-coded task_1 table
FEATURES = "tumor_vs_normal_resnet_features"  # main.py's hard-coded feature folder under --data_root_dir
SPLITS = "histcode_folds"


def _project(params_path: str) -> tuple[object, object, pd.DataFrame, pd.DataFrame, Path]:
    """(mil config, base config, labelled manifest, train_mil's saved splits, feature folder) of the project."""
    from histcode.cohort.splits import load_splits
    from histcode.config import ProjectConfig, base, load_params, section
    from histcode.io.manifest import LABELLED_COLUMNS, read_manifest
    from histcode.mil.config import MilConfig
    from histcode.paths import Paths

    params = load_params(params_path)
    bcfg = base(params)
    cfg = section(MilConfig, "mil", params)
    paths = Paths.from_base(bcfg)
    cohort = bcfg.train_cohort
    manifest = read_manifest(paths.slides_csv(cohort), columns=LABELLED_COLUMNS, labelled=True)
    splits = load_splits(paths.splits(cohort))
    encoder = ProjectConfig.load(params).require_mil_encoder()
    return cfg, bcfg, manifest, splits, paths.features(cohort, encoder)


def prepare(args: argparse.Namespace) -> dict[str, object]:
    """Write CLAM's layout under ``--work`` from the project's manifest, splits and feature files."""
    import torch

    from histcode.mil.bags import read_bag

    cfg, _, manifest, splits, feat_dir = _project(args.params)
    work = Path(args.work)
    (work / "dataset_csv").mkdir(parents=True, exist_ok=True)
    pt_dir = work / "features" / FEATURES / "pt_files"
    pt_dir.mkdir(parents=True, exist_ok=True)
    rows, dim = [], 0
    for sid, pid, lab in zip(manifest["slide_id"], manifest["patient_id"], manifest["label"], strict=True):
        h5 = feat_dir / f"{sid}.h5"
        if not h5.exists():
            continue
        x = np.asarray(read_bag(h5)[0], dtype=np.float32)
        dim = x.shape[1]
        torch.save(torch.from_numpy(x), pt_dir / f"{sid}.pt")  # rewritten each run: never a stale export
        rows.append({"case_id": str(pid), "slide_id": str(sid),
                     "label": "tumor_tissue" if int(lab) == 1 else "normal_tissue"})
    table = pd.DataFrame(rows)
    table.to_csv(work / TASK_CSV, index=False)
    by_patient = table.groupby("case_id")["slide_id"].apply(list)
    split_dir = work / "splits" / SPLITS
    split_dir.mkdir(parents=True, exist_ok=True)
    folds = sorted(splits["fold"].unique())
    for k in folds:
        sub = splits[splits["fold"] == k]
        cols = {s: sorted(sid for p in sub.loc[sub["split"] == s, "patient_id"] for sid in by_patient.get(p, []))
                for s in ("train", "val", "test")}
        n = max(len(v) for v in cols.values())
        pd.DataFrame({s: v + [None] * (n - len(v)) for s, v in cols.items()}).to_csv(split_dir / f"splits_{k}.csv")
    return {"slides": len(table), "patients": int(table["case_id"].nunique()), "dim": dim, "folds": len(folds),
            "lr": cfg.lr, "weight_decay": cfg.weight_decay, "dropout": cfg.dropout}


def ours(args: argparse.Namespace) -> None:
    """One whole HistCode run: CLAM-SB on every fold with the matched settings; per-slide test P to CSV."""
    import torch

    from histcode.mil.bags import BagCache, bag_shape, feature_paths
    from histcode.mil.cv import run_fold
    from histcode.mil.parallel import fold_job
    from histcode.worker_pool import torch_pool

    cfg, bcfg, manifest, splits, feat_dir = _project(args.params)
    cfg = replace(cfg, hidden=512, attn_hidden=256, inst_loss="ce", inst_b=8, bag_weight=0.7,
                  max_epochs=args.epochs, min_epochs=args.epochs, patience=args.epochs, tile_dropout=0.0,
                  feature_noise=0.0, progress=False, bootstrap=0)
    paths, _ = feature_paths(feat_dir, manifest["slide_id"].astype(str).tolist())
    in_dim = bag_shape(next(iter(paths.values())))[1]
    folds = sorted(int(k) for k in splits["fold"].unique())
    workers = 0 if args.threads else cfg.workers
    if workers:
        with torch_pool(workers, threads=cfg.threads) as pool:
            futures = [pool.submit(fold_job, manifest, paths, cfg.cache_mb, splits, k, "clam_sb", cfg, in_dim,
                                   bcfg.seed) for k in folds]
            results = [f.result() for f in futures]
    else:
        torch.set_num_threads(args.threads or cfg.threads)
        bags = BagCache(paths, cfg.cache_mb)
        results = [run_fold(manifest, bags, splits, k, "clam_sb", cfg, in_dim=in_dim, seed=bcfg.seed) for k in folds]
    preds = pd.concat([r.predictions for r in results], ignore_index=True)
    preds[["slide_id", "fold", "label", "prob_tumor"]].to_csv(args.preds, index=False)


def clam_preds(results_dir: Path) -> pd.DataFrame:
    """Per-slide test P(tumour) of CLAM's ``split_<k>_results.pkl`` files."""
    rows = []
    for pkl in sorted(results_dir.glob("split_*_results.pkl")):
        fold = int(pkl.stem.split("_")[1])
        with pkl.open("rb") as f:
            res = pickle.load(f)
        for sid, r in res.items():
            rows.append({"slide_id": sid, "fold": fold, "label": int(np.asarray(r["label"]).ravel()[0]),
                         "prob_tumor": float(np.asarray(r["prob"]).ravel()[1])})
    return pd.DataFrame(rows)


def aucs(preds: pd.DataFrame) -> dict[str, object]:
    from sklearn.metrics import roc_auc_score

    per_fold = {int(k): float(roc_auc_score(g["label"], g["prob_tumor"])) if g["label"].nunique() == 2 else None
                for k, g in preds.groupby("fold")}
    return {"pooled_auc": float(roc_auc_score(preds["label"], preds["prob_tumor"])), "fold_auc": per_fold,
            "n_test_slides": len(preds)}


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{cmd[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="compare", choices=["compare", "ours"])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--clam-dir", default="../peer/CLAM")
    ap.add_argument("--clam-python", default="../peer/clam-venv/bin/python")
    ap.add_argument("--work", default="/tmp/bench_mil_vs_clam")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="0: each side's defaults; N: one process, N threads")
    ap.add_argument("--preds", default=None, help="(ours) where the per-slide predictions go")
    ap.add_argument("--out", default="benchmarks/results/bench_mil_vs_clam.json")
    args = ap.parse_args()
    if args.mode == "ours":
        ours(args)
        return
    work = Path(args.work).resolve()
    setup = prepare(args)
    print(f"exported {setup['slides']} slides / {setup['patients']} patients, {setup['folds']} folds", flush=True)
    env = {**os.environ}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    ours_preds = work / "ours_preds.csv"
    ours_cmd = [sys.executable, str(Path(__file__).resolve()), "ours", "--params", str(Path(args.params).resolve()),
                "--epochs", str(args.epochs), "--threads", str(args.threads), "--preds", str(ours_preds)]
    clam_cmd = [str(Path(args.clam_python).absolute()), str(Path(args.clam_dir).resolve() / "main.py"),
                "--task", "task_1_tumor_vs_normal", "--data_root_dir", str(work / "features"),
                "--split_dir", SPLITS, "--k", str(setup["folds"]), "--max_epochs", str(args.epochs),
                "--lr", str(setup["lr"]), "--reg", str(setup["weight_decay"]), "--drop_out", str(setup["dropout"]),
                "--model_type", "clam_sb", "--model_size", "small", "--embed_dim", str(setup["dim"]),
                "--bag_loss", "ce", "--inst_loss", "ce", "--B", "8", "--bag_weight", "0.7",
                "--exp_code", "bench", "--results_dir", str(work / "clam_results"), "--seed", "1"]
    project = Path(args.params).resolve().parent
    times: dict[str, list[float]] = {"histcode": [], "clam": []}
    for i in range(args.pairs):
        order = (("histcode", ours_cmd, project), ("clam", clam_cmd, work))
        for name, cmd, cwd in order if i % 2 == 0 else order[::-1]:
            times[name].append(timed(cmd, cwd, env))
            print(f"pair {i + 1}/{args.pairs}: {name} {times[name][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"setup": setup, "epochs": args.epochs, "threads": args.threads or "defaults", "pairs": args.pairs,
              "wall_s": times, "median_s": med, "clam_over_histcode": med["clam"] / med["histcode"],
              "histcode": aucs(pd.read_csv(ours_preds)),
              "clam": aucs(clam_preds(work / "clam_results" / "bench_s1")),
              "cpu_count": os.cpu_count(), "load_avg_1m_end": os.getloadavg()[0]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
