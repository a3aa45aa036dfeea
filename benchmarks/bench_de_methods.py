"""DE methods on the same patient folds: held-out accuracy against the random baseline, and time.

Runs every ``<representation>/<model>`` of ``histcode.genes.methods`` (the paper's top/bottom attention
tiles with its per-gene heads, all-tile summaries with nested-CV ridge / elastic net / PLS2 / reduced-rank
ridge / per-gene heads) on one cohort's DE inputs and folds, exactly as train_de cross-validates them, and
scores each as evaluate_de does (Wilcoxon vs random, BH, planted/null genes of a synthetic cohort).
``seconds`` is the wall time of the cross-validation (all folds, nested CV included; inputs read once).

    cd <project with data/> && python benchmarks/bench_de_methods.py --params params.yaml \\
        --out benchmarks/results/bench_de_methods.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pandas as pd
import torch

DEFAULT_METHODS = ["paper/heads", "paper/ridge", "summaries/heads", "summaries/ridge", "summaries/enet",
                   "summaries/pls", "summaries/rrr"]


def main() -> None:
    from histcode.config import base, load_params, section
    from histcode.evaluation.de_methods import methods_table
    from histcode.evaluation.de_plots import plot_methods
    from histcode.expression.config import ExpressionConfig
    from histcode.genes.config import de_config
    from histcode.genes.methods import MethodSettings, Representations, cross_validate_method
    from histcode.genes.run import load_de_data
    from histcode.paths import Paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cohort", default=None)
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--n-random", type=int, default=100)
    ap.add_argument("--label", default="", help="what the cohort is (recorded in the json)")
    ap.add_argument("--out", default="benchmarks/results/bench_de_methods.json")
    args = ap.parse_args()

    params = load_params(args.params)
    params["de"] = {**params["de"], "method": args.methods[0], "methods": args.methods, "progress": False}
    cfg, bcfg = de_config(params), base(params)  # de.attention_model null resolved to mil.pooling
    thr = section(ExpressionConfig, "expression", params).log2_threshold
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    data = load_de_data(cfg, bcfg, cohort=args.cohort)
    load_s = time.perf_counter() - t0
    settings = MethodSettings(lr=cfg.lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs,
                              inner_folds=cfg.inner_folds, log2_threshold=thr, seed=bcfg.seed)
    reps = Representations(data.inputs.patient_ids, data.inputs.x, data.summaries)
    frames, records = [], []
    for method in args.methods:
        pred, rec = cross_validate_method(method, reps, data.y_reg, data.y_cls, data.targets.genes, data.folds,
                                          settings)
        frames.append(pred)
        records.append(rec)
        print(f"{method}: {rec['seconds']:.1f} s", flush=True)
    effects = None
    if bcfg.cohort(data.cohort).synthetic:
        from histcode.io.truth import read_gene_effects

        effects = read_gene_effects(Paths.from_base(bcfg).ground_truth)
    table = methods_table(pd.concat(frames, ignore_index=True), n_random=args.n_random, seed=bcfg.seed,
                          alternative="greater", fdr=0.05, timing=pd.DataFrame.from_records(records),
                          effects=effects)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    plot_methods(table, out.with_suffix(".png"),
                 f"{data.cohort} ({args.label or 'cohort'}): {len(data.inputs.patient_ids)} patients, "
                 f"{len(data.targets.genes)} genes, {data.fold_info['n_folds']} folds")
    pd.set_option("display.width", 250)
    print(table.round(3).to_string(index=False))
    out.write_text(json.dumps({
        "label": args.label, "cohort": data.cohort, "n_patients": len(data.inputs.patient_ids),
        "n_genes": len(data.targets.genes), "n_folds": data.fold_info["n_folds"], "encoder": cfg.encoder,
        "load_inputs_s": round(load_s, 2), "base_seed": bcfg.seed, "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(), "methods": table.round(4).to_dict("records"),
    }, indent=1))


if __name__ == "__main__":
    main()
