"""Linear probe: do tile features separate tumour from normal tissue? (synthetic cohort, planted truth)

Tile labels come from the generator's region masks (evaluation only): tumour = at least ``--min-frac`` of the
tile is tumour region, normal = tissue with no tumour at all; mixed tiles are left out. ``--task lymphocytes``
asks instead whether features see lymphocytic infiltrates: 1 = at least 2,000 lymphocytes/mm² in the tile
(the generator's lymphocyte map), 0 = tissue under 500/mm²; tiles in between are left out. For every encoder's
features: a logistic regression on standardised features scored by patient-grouped 5-fold CV (balanced
accuracy, AUC), the same with only 5 / 20 labelled tiles per class (20 draws; test patients disjoint from
the labelled ones), and a 20-nearest-neighbour probe (patient-grouped CV). E.g. AdCo against random init:

    python benchmarks/probe_features.py --cohort tcga_synth --encoders adco random
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

TUMOUR, TISSUE = 3, (1, 2, 3, 4, 5, 8)


def tile_labels(gt_dir: Path, cohort: str, slide_id: str, coords: np.ndarray, size: int,
                min_frac: float) -> np.ndarray:
    """Per tile: 1 tumour, 0 tumour-free tissue, -1 mixed or mostly background (excluded)."""
    from histcode.synth.truth import read_region_mask

    mask, ds = read_region_mask(gt_dir, cohort, slide_id)
    out = np.full(len(coords), -1, dtype=np.int64)
    for i, (x, y) in enumerate(coords):
        patch = mask[int(y // ds):int(np.ceil((y + size) / ds)), int(x // ds):int(np.ceil((x + size) / ds))]
        if patch.size == 0:
            continue
        tissue = np.isin(patch, TISSUE).mean()
        tumour = (patch == TUMOUR).mean()
        if tumour >= min_frac:
            out[i] = 1
        elif tumour == 0 and tissue >= 0.5:
            out[i] = 0
    return out


def lymphocyte_labels(gt_dir: Path, cohort: str, slide_id: str, coords: np.ndarray, size: int) -> np.ndarray:
    """Per tile: 1 lymphocyte-rich (>= 2000/mm²), 0 tissue with < 500/mm², -1 in between or background."""
    from histcode.evaluation.de_truth import tile_truth

    density, _ = tile_truth(gt_dir, cohort, slide_id, coords, size)
    tissue = tile_labels(gt_dir, cohort, slide_id, coords, size, 0.0) >= 0
    out = np.full(len(coords), -1, dtype=np.int64)
    out[density >= 2000] = 1
    out[(density < 500) & tissue] = 0
    return out


def load(features_dir: Path, gt_dir: Path, cohort: str, min_frac: float, task: str = "tumour") -> pd.DataFrame:
    from histcode.features.store import read_features

    truth = pd.read_csv(gt_dir / "slides.csv")
    truth = truth[truth["cohort"] == cohort].set_index("slide_id")
    rows = []
    for h5 in sorted(features_dir.glob("*.h5")):
        sid = h5.stem
        key = next((s for s in truth.index if s.startswith(sid)), None)
        if key is None:
            continue
        feats, coords, attrs = read_features(h5)
        size = int(attrs["patch_size"])
        labels = (lymphocyte_labels(gt_dir, cohort, key, coords, size) if task == "lymphocytes"
                  else tile_labels(gt_dir, cohort, key, coords, size, min_frac))
        keep = labels >= 0
        rows.append(pd.DataFrame({"patient": truth.loc[key, "patient_id"], "label": labels[keep],
                                  "features": list(feats[keep].astype(np.float32))}))
    if not rows:
        raise FileNotFoundError(f"{features_dir}: no features .h5 matching {gt_dir / 'slides.csv'}; run extract first.")
    return pd.concat(rows, ignore_index=True)


def probe(df: pd.DataFrame, seed: int) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.model_selection import GroupKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.stack(df["features"].to_numpy())
    y = df["label"].to_numpy()
    groups = df["patient"].to_numpy()

    def linear() -> object:
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))

    out: dict[str, float] = {"n_tiles": len(y), "n_tumour": int(y.sum()), "n_patients": len(set(groups))}
    for name, make in (("linear", linear), ("knn20", lambda: make_pipeline(StandardScaler(),
                                                                            KNeighborsClassifier(20)))):
        prob = np.zeros(len(y))
        for train, test in GroupKFold(n_splits=5, shuffle=True, random_state=seed).split(x, y, groups):
            prob[test] = make().fit(x[train], y[train]).predict_proba(x[test])[:, 1]
        out[f"{name}_balanced_accuracy"] = float(balanced_accuracy_score(y, prob > 0.5))
        out[f"{name}_auc"] = float(roc_auc_score(y, prob))
    rng = np.random.default_rng(seed)
    patients = np.unique(groups)
    for n in (5, 20):
        scores = []
        for _ in range(20):
            labelled = np.isin(groups, rng.choice(patients, len(patients) // 2, replace=False))
            idx = np.concatenate([rng.choice(np.flatnonzero(labelled & (y == c)), n, replace=False) for c in (0, 1)])
            model = linear().fit(x[idx], y[idx])
            scores.append(balanced_accuracy_score(y[~labelled], model.predict(x[~labelled])))
        out[f"linear_{n}shot_balanced_accuracy"] = float(np.mean(scores))
        out[f"linear_{n}shot_sd"] = float(np.std(scores))
    return out


def main() -> None:
    from histcode.config import base, load_params
    from histcode.paths import Paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cohort", default=None)
    ap.add_argument("--encoders", nargs="+", default=["adco", "random"])
    ap.add_argument("--min-frac", type=float, default=0.5)
    ap.add_argument("--task", choices=["tumour", "lymphocytes"], default="tumour")
    ap.add_argument("--out", default=None, help="default benchmarks/results/probe_features.json "
                                                  "(probe_lymphocytes.json for --task lymphocytes)")
    args = ap.parse_args()
    args.out = args.out or ("benchmarks/results/probe_lymphocytes.json" if args.task == "lymphocytes"
                            else "benchmarks/results/probe_features.json")
    bcfg = base(load_params(args.params))
    paths = Paths.from_base(bcfg)
    cohort = args.cohort or bcfg.train_cohort
    result = {"cohort": cohort, "task": args.task, "min_tumour_frac": args.min_frac}
    for name in args.encoders:
        result[name] = probe(load(paths.features(cohort, name), paths.ground_truth, cohort, args.min_frac,
                                  args.task), bcfg.seed)
        print(name, json.dumps(result[name]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
