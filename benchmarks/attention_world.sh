#!/usr/bin/env bash
# Build a small synthetic project for the attention-vs-truth heatmap study (benchmarks/attention_heatmap_scale.py):
#   benchmarks/attention_world.sh DIR SEED [N_PATIENTS]
# DIR gets a copy of params.yaml (seed SEED, the demo profile, N_PATIENTS training patients) and runs synth ->
# ingest -> tile -> stain_ref -> extract (AdCo only, with the encoder ENCODER, default the demo's data/models/encoder)
# -> train_mil (every mil.baselines method, their attention in DIR/data/attention), niced. Then:
#   python benchmarks/attention_heatmap_scale.py DIR; (cd DIR && histcode heatmaps)
set -euo pipefail
DIR=$1; SEED=$2; NP=${3:-16}
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
PY=${PY:-/work/main/.venv/bin/python}
ENCODER=${ENCODER:-$ROOT/data/models/encoder}
mkdir -p "$DIR"; cd "$DIR"
export PYTHONPATH=$ROOT/src MPLBACKEND=Agg PYTHONHASHSEED=0 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
"$PY" "$ROOT/benchmarks/derive_params.py" "$ROOT/params.yaml" params.yaml "
base: {seed: $SEED}
synth: {seed: $SEED, n_patients: $NP, n_patients_external: 2, workers: 1, progress: false}
tile: {workers: 1}
extract: {encoders: [adco], workers: 1, threads: 1, progress: false}
mil: {bootstrap: 200, progress: false, workers: 1}"
P="nice -n 15 $PY $ROOT/pipelines"
step() { echo "$(date -u +%H:%M:%S) $*"; }
[ -d data/synthetic ] || { step synth; $P/synth.py --params params.yaml; }
c=tcga_synth
[ -d data/manifests/$c ] || { step ingest $c; $P/ingest.py --cohort $c; }
[ -f data/tiles/$c/process_list.csv ] || { step tile $c; $P/tile.py --cohort $c; }
[ -f data/stain/reference.json ] || { step stain_ref; $P/stain_ref.py; }
[ -d data/models/encoder ] || { step "copy demo encoder"; mkdir -p data/models; cp -r "$ENCODER" data/models/encoder; }
step extract $c; $P/extract.py --cohort $c --no-progress
[ -f data/models/mil/mil.json ] || { step train_mil; $P/train_mil.py; }
step done
