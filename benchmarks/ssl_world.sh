#!/usr/bin/env bash
# Build a small synthetic project for the SSL-value and transfer benchmarks, outside the repository:
#   benchmarks/ssl_world.sh DIR SEED [N_PATIENTS] [N_EXTERNAL] [EXTRA_PARAMS_YAML]
# DIR gets a copy of params.yaml (shrunk, seed SEED) and runs synth → ingest → tile (both cohorts) → stain_ref →
# pretrain (AdCo, SimCLR) → extract (adco, random, simclr; both cohorts) → train_mil (AdCo features) →
# evaluate-external of that model on cptac_synth, with this checkout's src/ and pipelines/ (each step skipped when
# its output exists). EXTRA_PARAMS_YAML (optional) is merged last (e.g. synth site profiles). With EXT_SEED set,
# the external cohort comes from a second synth run with that seed (another seed than training). Then, in DIR:
#   python $ROOT/benchmarks/probe_features.py --encoders adco simclr random --mil --figure ssl_value.png
set -euo pipefail
DIR=$1; SEED=$2; NP=${3:-16}; NE=${4:-10}; EXTRA=${5:-}
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
PY=${PY:-/work/main/.venv/bin/python}
mkdir -p "$DIR"
cd "$DIR"
export PYTHONPATH=$ROOT/src MPLBACKEND=Agg PYTHONHASHSEED=0
"$PY" "$ROOT/benchmarks/derive_params.py" "$ROOT/params.yaml" params.yaml "
base: {seed: $SEED}
synth: {seed: $SEED, n_patients: $NP, n_patients_external: $NE, slide_width: 3072, slide_height: 2560,
        n_genes_background: 40, workers: 1, progress: false}
tile: {workers: 1}
pretrain: {workers: 0, threads: 1, progress: false}
extract: {encoders: [adco, random, simclr], workers: 0, threads: 1, progress: false}
mil: {baselines: [], bootstrap: 200, progress: false}" "$EXTRA"
P="$PY $ROOT/pipelines"
step() { echo "$(date -u +%H:%M:%S) $*"; }
[ -d data/synthetic ] || { step synth; $P/synth.py --params params.yaml; }
if [ -n "${EXT_SEED:-}" ] && [ ! -d data/synthetic_ext ]; then
  step "synth external seed $EXT_SEED"
  "$PY" "$ROOT/benchmarks/derive_params.py" params.yaml params_ext.yaml \
    "synth: {seed: $EXT_SEED, n_patients: 2, n_without_normal: 0}"
  $P/synth.py --params params_ext.yaml --out data/synthetic_ext
  rm -rf data/synthetic/cptac_synth && cp -r data/synthetic_ext/cptac_synth data/synthetic/cptac_synth
fi
for c in tcga_synth cptac_synth; do
  [ -d data/manifests/$c ] || { step ingest $c; $P/ingest.py --cohort $c; }
  [ -f data/tiles/$c/process_list.csv ] || { step tile $c; $P/tile.py --cohort $c; }
done
[ -f data/stain/reference.json ] || { step stain_ref; $P/stain_ref.py; }
[ -d data/models/encoder ] || { step pretrain adco; $P/pretrain.py --no-progress; }
[ -d data/models/encoder_simclr ] || { step pretrain simclr; $P/pretrain.py --no-progress --method simclr --out data/models/encoder_simclr; }
for c in tcga_synth cptac_synth; do step extract $c; $P/extract.py --cohort $c --no-progress; done
[ -f data/models/mil/mil.json ] || { step train_mil; $P/train_mil.py; }
step evaluate-external; "$PY" -m histcode.cli evaluate-external --cohort cptac_synth --model data/models/mil
step done
