"""Linear probe: do tile features separate tumour from normal tissue? (synthetic cohort, planted truth)

Tile labels come from the generator's region masks (evaluation only): tumour = at least ``--min-frac`` of the
tile is tumour region, normal = tissue with no tumour at all; mixed tiles are left out. ``--task lymphocytes``
asks instead whether features see lymphocytic infiltrates: 1 = at least 2,000 lymphocytes/mm² in the tile
(the generator's lymphocyte map), 0 = tissue under 500/mm²; tiles in between are left out. For every encoder's
features: a logistic regression on standardised features scored by patient-grouped 5-fold CV (balanced
accuracy, AUC), the same with only 5 / 20 labelled tiles per class (``--draws`` draws; test patients disjoint
from the labelled ones), and a 20-nearest-neighbour probe (patient-grouped CV). E.g. AdCo against random init:

    python benchmarks/probe_features.py --cohort tcga_synth --encoders adco random

95 % CIs (``ci`` block of the JSON, figure ``--figure``): with 5 / 20 labels per class, the percentile interval
over the label draws of each encoder's balanced accuracy and the **bootstrap CI of the mean paired difference**
to the reference encoder (``--reference``, default random; every encoder sees the same draws: same labelled
patients and tiles), plus the 2.5-97.5 % range of the per-draw differences (how often a single draw could go the
other way). With all labels: patient-cluster bootstrap of the cross-validated balanced accuracy and of the
paired difference. ``--mil`` also runs the patient-level MIL cross-validation of ``mil.pooling`` (params
``mil``) on each encoder's slide bags (same folds) and reports out-of-fold AUC with slide-bootstrap CIs and
paired AUC differences:

    python benchmarks/probe_features.py --encoders adco simclr random --mil --figure benchmarks/results/ssl_value.png
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
    from histcode.io.truth import read_region_mask

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
    from histcode.io.features import read_features

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
        rows.append(pd.DataFrame({"patient": truth.loc[key, "patient_id"], "slide": sid, "tile": np.flatnonzero(keep),
                                  "label": labels[keep], "features": list(feats[keep].astype(np.float32))}))
    if not rows:
        raise FileNotFoundError(f"{features_dir}: no features .h5 matching {gt_dir / 'slides.csv'}; run extract first.")
    return pd.concat(rows, ignore_index=True)


def label_draws(y: np.ndarray, groups: np.ndarray, n: int, n_draws: int, seed: int
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labelled-patient mask, indices of n labelled tiles per class) per draw: half the patients labelled, the
    other half scored; the same seed gives every encoder the same draws."""
    rng = np.random.default_rng([seed, n])
    patients = np.unique(groups)
    out = []
    for _ in range(n_draws):
        labelled = np.isin(groups, rng.choice(patients, len(patients) // 2, replace=False))
        idx = np.concatenate([rng.choice(np.flatnonzero(labelled & (y == c)), n, replace=False) for c in (0, 1)])
        out.append((labelled, idx))
    return out


def linear_probe():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))


def fewshot_scores(x: np.ndarray, y: np.ndarray, draws: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Balanced accuracy on the unlabelled patients' tiles of a probe fitted on each draw's labelled tiles."""
    from sklearn.metrics import balanced_accuracy_score

    return np.array([balanced_accuracy_score(y[~lab], linear_probe().fit(x[idx], y[idx]).predict(x[~lab]))
                     for lab, idx in draws])


def cv_predictions(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold P(tumour) of the all-labels linear probe (patient-grouped 5-fold CV)."""
    from sklearn.model_selection import GroupKFold

    prob = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=5, shuffle=True, random_state=seed).split(x, y, groups):
        prob[test] = linear_probe().fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    return prob


def _interval(v: np.ndarray) -> list[float]:
    return [float(q) for q in np.quantile(v, [0.025, 0.975])]


def mean_ci(v: np.ndarray, n_boot: int, seed: int) -> list[float]:
    """Percentile-bootstrap 95 % CI of the mean of ``v`` (resampling its entries)."""
    rng = np.random.default_rng(seed)
    return _interval(v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1))


def patient_bootstrap_bacc(y: np.ndarray, groups: np.ndarray, probs: dict[str, np.ndarray], n_boot: int,
                           seed: int) -> dict[str, np.ndarray]:
    """Balanced accuracy (P >= 0.5) of each encoder's predictions over patient-cluster resamples (same ones)."""
    patients, inv = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    out = {k: np.empty(n_boot) for k in probs}
    for b in range(n_boot):
        w = np.bincount(rng.integers(0, len(patients), len(patients)), minlength=len(patients))[inv]
        for k, p in probs.items():
            hit = ((p >= 0.5).astype(int) == y) * w
            out[k][b] = 0.5 * (hit[y == 1].sum() / w[y == 1].sum() + hit[y == 0].sum() / w[y == 0].sum())
    return out


def compare(frames: dict[str, pd.DataFrame], reference: str, *, seed: int, n_draws: int, n_boot: int
            ) -> dict[str, object]:
    """The ``ci`` block: per encoder and label budget (5, 20, all) the score with its 95 % interval, and the
    paired difference to ``reference`` with its 95 % CI (see module doc)."""
    from sklearn.metrics import balanced_accuracy_score

    first = next(iter(frames.values()))
    for name, df in frames.items():
        if not (df[["slide", "tile", "label"]].to_numpy() == first[["slide", "tile", "label"]].to_numpy()).all():
            raise ValueError(f"{name}: tiles differ from the other encoders' (extract every encoder on the same tiles)")
    y, groups = first["label"].to_numpy(), first["patient"].to_numpy()
    xs = {k: np.stack(df["features"].to_numpy()) for k, df in frames.items()}
    out: dict[str, object] = {"reference": reference, "n_draws": n_draws, "n_boot": n_boot}
    for n in (5, 20):
        draws = label_draws(y, groups, n, n_draws, seed)
        scores = {k: fewshot_scores(x, y, draws) for k, x in xs.items()}
        block = {}
        for k, v in scores.items():
            block[k] = {"balanced_accuracy": float(v.mean()), "draw_interval": _interval(v),
                        "mean_ci": mean_ci(v, n_boot, seed)}
            if k != reference:
                d = v - scores[reference]
                block[k].update({f"delta_vs_{reference}": float(d.mean()), "delta_ci": mean_ci(d, n_boot, seed),
                                 "delta_draw_interval": _interval(d), "wins": float((d > 0).mean())})
        out[f"{n}_labels"] = block
    probs = {k: cv_predictions(x, y, groups, seed) for k, x in xs.items()}
    boot = patient_bootstrap_bacc(y, groups, probs, n_boot, seed)
    block = {}
    for k, p in probs.items():
        block[k] = {"balanced_accuracy": float(balanced_accuracy_score(y, p >= 0.5)), "ci": _interval(boot[k])}
        if k != reference:
            block[k].update({f"delta_vs_{reference}": block[k]["balanced_accuracy"]
                             - float(balanced_accuracy_score(y, probs[reference] >= 0.5)),
                             "delta_ci": _interval(boot[k] - boot[reference])})
    out["all_labels"] = block
    return out


def mil_compare(params: dict, cohort: str, encoders: list[str], reference: str) -> dict[str, object]:
    """Patient-level MIL CV of ``mil.pooling`` on each encoder's bags (same folds): out-of-fold AUC with a
    slide-bootstrap 95 % CI and the paired AUC difference to ``reference``."""
    import torch

    from histcode.cohort.splits import make_patient_splits
    from histcode.config import base, section
    from histcode.io.manifest import LABELLED_COLUMNS, read_manifest
    from histcode.metrics.classification import classification_metrics, paired_delta
    from histcode.mil.bags import BagCache, bag_shape, usable_bags
    from histcode.mil.config import MilConfig
    from histcode.mil.cv import run_fold
    from histcode.paths import Paths

    bcfg, cfg = base(params), section(MilConfig, "mil", params)
    paths = Paths.from_base(bcfg)
    torch.set_num_threads(max(1, cfg.threads))
    manifest = read_manifest(paths.slides_csv(cohort), columns=LABELLED_COLUMNS, labelled=True)
    bags = {e: usable_bags(paths.features(cohort, e), list(manifest["slide_id"]), cohort=cohort, who="probe")[0]
            for e in encoders}
    common = set.intersection(*(set(b) for b in bags.values()))
    usable = manifest[manifest["slide_id"].isin(common)]
    splits = make_patient_splits(usable, cfg.n_folds, cfg.val_frac, cfg.test_frac, bcfg.seed)
    preds = {}
    for e in encoders:
        cache = BagCache({s: p for s, p in bags[e].items() if s in common}, cfg.cache_mb)
        dim = bag_shape(next(iter(cache.paths.values())))[1]
        folds = [run_fold(usable, cache, splits, k, cfg.pooling, cfg, in_dim=dim, seed=bcfg.seed)
                 for k in range(cfg.n_folds)]
        preds[e] = pd.concat([f.predictions for f in folds]).sort_values("slide_id").reset_index(drop=True)
        print(f"mil {e}: AUC {classification_metrics(preds[e]['label'], preds[e]['prob_tumor'], n_boot=0)['auc']:.3f}",
              flush=True)
    y = preds[reference]["label"].to_numpy()
    out: dict[str, object] = {"pooling": cfg.pooling, "n_slides": len(y), "n_folds": cfg.n_folds,
                              "n_boot": cfg.bootstrap}
    for e, df in preds.items():
        m = classification_metrics(y, df["prob_tumor"].to_numpy(), n_boot=cfg.bootstrap, seed=bcfg.seed)
        out[e] = {"auc": m["auc"], "auc_ci": [m["auc_ci_low"], m["auc_ci_high"]]}
        if e != reference:
            d = paired_delta(y, df["prob_tumor"].to_numpy(), preds[reference]["prob_tumor"].to_numpy(), metric="auc",
                             n_boot=cfg.bootstrap, seed=bcfg.seed)
            out[e].update({f"delta_auc_vs_{reference}": d["delta"], "delta_ci": [d["ci_low"], d["ci_high"]]})
    return out


def plot(result: dict, path: Path) -> None:
    """Probe balanced accuracy per label budget (95 % intervals) and MIL AUC (95 % CIs) per encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ci, mil = result["ci"], result.get("mil")
    encoders = [k for k in ci["all_labels"]]
    fig, axes = plt.subplots(1, 2 if mil else 1, figsize=(12 if mil else 7, 4.6), squeeze=False)
    ax = axes[0, 0]
    budgets = ["5_labels", "20_labels", "all_labels"]
    colours = {e: f"C{j}" for j, e in enumerate(encoders)}
    for j, e in enumerate(encoders):
        xs = np.arange(len(budgets)) + (j - (len(encoders) - 1) / 2) * 0.12
        vals = [ci[b][e]["balanced_accuracy"] for b in budgets]
        lo = [ci[b][e]["mean_ci"][0] if b != "all_labels" else ci[b][e]["ci"][0] for b in budgets]
        hi = [ci[b][e]["mean_ci"][1] if b != "all_labels" else ci[b][e]["ci"][1] for b in budgets]
        d20, ref = ci["20_labels"][e], ci["reference"]
        label = e if e == ref else (f"{e} (20/class: Δ {d20['delta_vs_' + ref]:+.3f} "
                                    f"[{d20['delta_ci'][0]:+.3f}, {d20['delta_ci'][1]:+.3f}] vs {ref})")
        ax.errorbar(xs, vals, yerr=[np.subtract(vals, lo), np.subtract(hi, vals)], fmt="o-", capsize=4, label=label,
                    color=colours[e])
    ax.set_xticks(range(len(budgets)), ["5 / class", "20 / class", "all (5-fold CV)"])
    ax.set(xlabel=f"labelled tiles (few-shot: CI of the mean over {ci['n_draws']} label draws; all: patient "
                  "bootstrap)", ylabel="balanced accuracy (tumour vs normal tiles)",
           title=f"linear probe, {result['cohort']}, seed {result.get('seed')} (95 % CI)")
    ax.legend(fontsize=8, loc="lower right")
    if mil:
        ax = axes[0, 1]
        aucs = [mil[e]["auc"] for e in encoders]
        lo = [mil[e]["auc_ci"][0] for e in encoders]
        hi = [mil[e]["auc_ci"][1] for e in encoders]
        for j, e in enumerate(encoders):
            ax.errorbar([j], [aucs[j]], yerr=[[aucs[j] - lo[j]], [hi[j] - aucs[j]]], fmt="o", capsize=6,
                        color=colours[e])
        ax.set_xticks(range(len(encoders)), encoders)
        ax.set(xlabel="encoder", ylabel="slide ROC-AUC (out-of-fold)",
               title=f"MIL {mil['pooling']}, {mil['n_folds']}-fold CV, {mil['n_slides']} slides (95 % CI)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    ap.add_argument("--reference", default="random", help="encoder the others are compared with (paired CIs)")
    ap.add_argument("--draws", type=int, default=50, help="label draws per budget for the CIs")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    ap.add_argument("--mil", action="store_true", help="also compare MIL CV AUC per encoder (params mil)")
    ap.add_argument("--figure", default=None, help="PNG of the CI comparison")
    ap.add_argument("--out", default=None, help="default benchmarks/results/probe_features.json "
                                                  "(probe_lymphocytes.json for --task lymphocytes)")
    args = ap.parse_args()
    args.out = args.out or ("benchmarks/results/probe_lymphocytes.json" if args.task == "lymphocytes"
                            else "benchmarks/results/probe_features.json")
    params = load_params(args.params)
    bcfg = base(params)
    paths = Paths.from_base(bcfg)
    cohort = args.cohort or bcfg.train_cohort
    result = {"cohort": cohort, "task": args.task, "min_tumour_frac": args.min_frac, "seed": bcfg.seed}
    frames = {}
    for name in args.encoders:
        frames[name] = load(paths.features(cohort, name), paths.ground_truth, cohort, args.min_frac, args.task)
        result[name] = probe(frames[name], bcfg.seed)
        print(name, json.dumps(result[name]), flush=True)
    if args.reference in frames and len(frames) > 1:
        result["ci"] = compare(frames, args.reference, seed=bcfg.seed, n_draws=args.draws, n_boot=args.boot)
        print("ci", json.dumps(result["ci"]), flush=True)
        if args.mil:
            result["mil"] = mil_compare(params, cohort, args.encoders, args.reference)
            print("mil", json.dumps(result["mil"]), flush=True)
        if args.figure:
            plot(result, Path(args.figure))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
