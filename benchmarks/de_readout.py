"""How well do the DE model's slide representations read the generator's four slide variables?

benchmarks/de_ceiling.py scores DE models fed the true slide variables read with error R. This measures the R the
project's own representations achieve on a synthetic cohort after ``dvc repro`` (its ``train_de`` inputs): for each
of the DE patients' tumour slides, a ridge regression (penalty by inner CV, standardised features) from

* ``summary mean+sd``: the mean and standard deviation of the slide's tile features (the core of ``summaries``),
* ``summary mean``: the mean alone,
* ``paper top/bottom``: the paper's mean of the top-100 and bottom-100 attention tiles (``paper``),

to tumour fraction, log lymphocyte density, tumour nuclear density and log necrosis share, scored by the Pearson r of
its 5-fold cross-validated predictions (mean over ``--repeats`` fold shuffles). An r near 0 or below: not read.

    python benchmarks/de_readout.py [--params params.yaml] [--out benchmarks/results/de_readout_demo.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_de_pairs import TRUTH_COLUMNS, truth_design


def cv_readout(x: np.ndarray, y: np.ndarray, repeats: int) -> float:
    """Mean over fold shuffles of the Pearson r of 5-fold cross-validated ridge predictions of ``y`` from ``x``."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 30)))
    rs = [np.corrcoef(cross_val_predict(model, x, y, cv=KFold(5, shuffle=True, random_state=k)), y)[0, 1]
          for k in range(repeats)]
    return float(np.mean(rs))


def main() -> None:
    from histcode.config import base, load_params
    from histcode.genes.config import de_config
    from histcode.genes.run import load_de_data
    from histcode.io.truth import read_slide_truth
    from histcode.paths import Paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/de_readout_demo.json"))
    args = ap.parse_args()
    params = load_params(args.params)
    params["de"] = {**params["de"], "progress": False}
    cfg, bcfg = de_config(params), base(params)
    data = load_de_data(cfg, bcfg)
    if data.summaries is None:
        raise SystemExit(f"error: {args.params}: de.methods has no summaries/* method, so train_de's inputs hold no "
                         "tile features; add one (e.g. summaries/rrr) and run dvc repro train_de first")
    ids = list(data.inputs.patient_ids)
    truth = truth_design(read_slide_truth(Paths.from_base(bcfg).ground_truth), data.inputs.slide_ids, ids)
    mean = np.asarray(data.summaries.means, dtype=np.float64)
    sd = np.stack([np.asarray(t, dtype=np.float64).std(0) for t in data.summaries.tiles])
    designs = {"summary mean+sd": np.c_[mean, sd], "summary mean": mean,
               "paper top/bottom": np.asarray(data.inputs.x, dtype=np.float64)}
    rows = []
    for name, x in designs.items():
        r = {col: cv_readout(x, truth[:, j], args.repeats) for j, col in enumerate(TRUTH_COLUMNS)}
        rows.append({"representation": name, "patients": len(ids), "dim": int(x.shape[1]), **r})
        print(f"{name:17s} ({len(ids)} patients, {x.shape[1]} dims): "
              + ", ".join(f"{c} r {v:+.2f}" for c, v in r.items()), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"encoder": cfg.encoder, "seed": bcfg.seed, "repeats": args.repeats,
                                    "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
