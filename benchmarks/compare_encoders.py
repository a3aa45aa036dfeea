"""Encoder comparison protocol: AdCo vs random init vs each foundation model on the probe, MIL and DE.

Same cohort, tiles, folds, seeds and downstream settings for every encoder; only the feature set changes.
Foundation models whose weights are not local are skipped with their one-line "how to obtain" message, so
the protocol runs with whatever weights a site has. Per encoder E (one DVC experiment each, so results sit
side by side in ``dvc exp show`` and MLflow, tagged with the encoder name and weight digest):

    dvc exp run -n enc-E -S 'extract.encoders=[E]' -S extract.sources.E=<weights> \
        -S extract.baseline_max_tiles=0 -S mil.encoder=E -S de.encoder=E

(every tile embedded, so no encoder is judged on a subsample), then the linear probes on all feature sets at
once: ``python benchmarks/probe_features.py --encoders adco random E ... [--task lymphocytes]``.
Report per encoder: probe balanced accuracy/AUC (all labels, 5 and 20 labels per class, 20-NN), MIL held-out
AUC with its bootstrap CI (``reports/metrics/train_mil.json``), DE median Pearson r and planted-gene recovery
(``reports/metrics/de.json``); differences between encoders with paired patient-level bootstrap CIs.

    python benchmarks/compare_encoders.py --encoders adco random uni virchow2 \
        --sources uni=/models/uni/pytorch_model.bin virchow2=/models/virchow2 [--run]

Without ``--run`` it only prints the plan (which encoders run, which are skipped and why).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys


def plan(encoders: list[str], sources: dict[str, str]) -> tuple[list[list[str]], list[str]]:
    """(commands to run, skipped lines) for ``encoders`` with the local weight ``sources``."""
    from histcode.features.foundation import FOUNDATION, locate_weights

    runs, skipped, ready = [], [], []
    for enc in encoders:
        extra: list[str] = []
        if enc in FOUNDATION:
            spec = FOUNDATION[enc]
            if spec.buildable:
                skipped.append(f"{enc}: {spec.buildable}")
                continue
            try:
                path = locate_weights(spec, sources.get(enc))
            except FileNotFoundError as exc:
                skipped.append(str(exc))
                continue
            extra = ["-S", f"extract.sources.{enc}={path}"]
        runs.append(["dvc", "exp", "run", "-n", f"enc-{enc}", "-S", f"extract.encoders=[{enc}]", *extra,
                     "-S", "extract.baseline_max_tiles=0", "-S", f"mil.encoder={enc}", "-S", f"de.encoder={enc}"])
        ready.append(enc)
    if ready:
        runs.append([sys.executable, "benchmarks/probe_features.py", "--encoders", *ready])
        runs.append([sys.executable, "benchmarks/probe_features.py", "--encoders", *ready, "--task", "lymphocytes"])
    return runs, skipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoders", nargs="+", default=["adco", "random", "uni", "uni2_h", "virchow2", "h_optimus_0",
                                                       "h_optimus_1", "phikon_v2", "gigapath", "ctranspath",
                                                       "resnet50_trunc"])
    ap.add_argument("--sources", nargs="*", default=[], help="name=path of local weight files or folders")
    ap.add_argument("--run", action="store_true", help="run the plan (default: print it)")
    args = ap.parse_args()
    sources = dict(s.split("=", 1) for s in args.sources)
    runs, skipped = plan(args.encoders, sources)
    for line in skipped:
        print(f"skip: {line}")
    for cmd in runs:
        print(("run: " if args.run else "plan: ") + shlex.join(cmd), flush=True)
        if args.run:
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
