#!/usr/bin/env bash
# Prepare .gpu/ (git-ignored) for benchmarks/gpu_check.sh: 8 demo slides with their coords and the stain
# reference, and the wheels the GPU machine lacks (OpenSlide). Run after `make demo` (it reads data/).
set -euo pipefail
cd "$(dirname "$0")/.."
cohort=${COHORT:-tcga_synth}
out=.gpu/cohort
rm -rf "$out" && mkdir -p "$out/slides" "$out/tiles" .gpu/whl
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
python3 - "$cohort" "$out" <<'PY'
import csv, shutil, sys
from pathlib import Path
cohort, out = sys.argv[1], Path(sys.argv[2])
rows = list(csv.DictReader(open(f"data/manifests/{cohort}/slides.csv")))[:8]
for r in rows:
    src = Path(r["path"])
    shutil.copy(src, out / "slides" / src.name)
    shutil.copy(f"data/tiles/{cohort}/{r['slide_id']}.h5", out / "tiles")
    r["path"] = f"slides/{src.name}"  # relative to slides.csv
with open(out / "slides.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
shutil.copy("data/stain/reference.json", out / "stain_reference.json")
PY
pip_pin() { .venv/bin/pip show "$1" | awk '/^Version/{print $2}'; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .gpu/whl \
  "openslide-python==$(pip_pin openslide-python)" "openslide-bin==$(pip_pin openslide-bin)"
du -sh .gpu
