#!/usr/bin/env bash
# One prepared GPU run (issue 18 item 6): on a lent GPU machine whose python3 holds torch/timm/h5py/opencv,
# install the carried OpenSlide wheels, then measure extraction and AdCo pretraining against their bounds
# (benchmarks/bench_gpu.py), then whether the device placements give the CPU's pixels (benchmarks/gpu_parity.py).
# Writes $OUT/bench_gpu.json, $OUT/bench_gpu.log and $OUT/gpu_parity.json. Prepare with gpu_prepare.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 PYTHONHASHSEED=0 OMP_NUM_THREADS=4
shm=$(df -k --output=size /dev/shm | tail -1)  # DataLoader workers hand batches over in /dev/shm
if [ "${shm:-0}" -lt 16777216 ]; then mount -o remount,size=32G /dev/shm 2>/dev/null || echo "small /dev/shm: ${shm} KiB"; fi
df -h /dev/shm | tail -1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$OUT/nvidia_smi.txt"
python3 -c "import openslide, timm, h5py, cv2, yaml; print('openslide', openslide.__library_version__, 'timm', timm.__version__)"
timeout "${BENCH_TIMEOUT:-420}" python3 benchmarks/bench_gpu.py --cohort-dir .gpu/cohort --out "$OUT/bench_gpu.json" "$@" \
  2>&1 | tee "$OUT/bench_gpu.log"
timeout "${PARITY_TIMEOUT:-120}" python3 benchmarks/gpu_parity.py --cohort-dir .gpu/cohort --out "$OUT/gpu_parity.json" \
  2>&1 | tail -16
