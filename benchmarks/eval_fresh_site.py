"""Validate the promoted (@champion) models on a CPTAC-like site drawn with a seed nobody developed on.

`make eval-cptac` scores the external cohort that the demo's own `synth` run drew beside the training cohort
(same generator seed, other site profile). This script draws a *fresh* external site instead: a second
`histcode synth` run with ``--seed`` into ``data/external_synth/<profile>_seed<SEED>/`` (only its CPTAC-like cohort is
used), registers it as cohort ``<profile>_seed<SEED>`` in a params copy, and runs the one external workflow
(`histcode evaluate-external`: ingest, tile, extract with the champion encoder and its stain reference, MIL at
its stored threshold, calibration). ``--profile site_c`` draws the harder third site instead. Metrics land in
``reports/metrics/eval_<profile>_seed<SEED>.json``.

    python benchmarks/eval_fresh_site.py --seed 9090 [--patients 12] [--profile cptac|site_c]
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def fresh_params(params: dict, seed: int, patients: int, profile: str) -> tuple[dict, str]:
    """A params copy whose synth run draws only the external site (seed ``seed``, site ``profile``) and knows it
    as a cohort."""
    p = copy.deepcopy(params)
    out = f"data/external_synth/{profile}_seed{seed}"
    p["synth"].update(seed=seed, out_dir=out, n_patients=2, n_without_normal=0, n_patients_external=patients,
                      n_svs=0, n_40x=0, progress=False, external_profile=profile)
    cohort = f"{profile}_seed{seed}"
    src = f"{out}/cptac_synth"
    p["base"]["cohorts"][cohort] = {"kind": "cptac", "role": "external", "synthetic": True, "source_dir": src,
                                    "slide_dir": f"{src}/slides", "slide_sheet": f"{src}/cptac_brca_manifest.csv"}
    return p, cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="generator seed of the fresh site")
    parser.add_argument("--patients", type=int, default=12, help="external patients (a tumour + a normal slide)")
    parser.add_argument("--profile", default="cptac", help="site profile (histcode.synth.sites): cptac | site_c")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    args = parser.parse_args()
    params, cohort = fresh_params(yaml.safe_load(args.params.read_text()), args.seed, args.patients, args.profile)
    fresh = ROOT / "data" / "external_synth" / f"params_{cohort}.yaml"
    fresh.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_text(yaml.safe_dump(params, sort_keys=False))
    histcode = [sys.executable, "-m", "histcode.cli"]
    if not (ROOT / params["synth"]["out_dir"] / "cptac_synth").is_dir():
        subprocess.run([*histcode, "synth", "--params", str(fresh), "--no-progress"], cwd=ROOT, check=True)
    subprocess.run([*histcode, "evaluate-external", "--cohort", cohort, "--params", str(fresh), "--no-progress"],
                   cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
