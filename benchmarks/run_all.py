"""``make bench``: run every benchmark script with its default (CPU demo) sizes and collect their results.

Each ``bench_*.py`` writes one JSON; this runs them one after another (never in parallel: they time the same
cores), each into ``--out-dir`` (default ``benchmarks/results/``), then writes ``summary.json`` there: per
benchmark its exit status, wall time and the JSON it produced. A failing benchmark is recorded, the others
still run; the exit status is 1 when any failed. ``bench_extract`` needs the demo's features and
``data/tiles`` (run ``dvc repro`` first), ``bench_tile_reads`` the demo's slides and tiles: they are skipped, with
the reason, when these are missing.

    python benchmarks/run_all.py [--only adco stain] [--out-dir benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from histcode.atomic import write_json  # noqa: E402

# name → extra arguments; each script also gets --out <out-dir>/<name>.json
BENCHMARKS: dict[str, list[str]] = {
    "bench_synth": [],
    "bench_tiling": [],
    "bench_stain": [],
    "bench_adco": [],
    "bench_extract": ["--cohort", "tcga_synth", "--encoder", "random", "--max-tiles", "3000"],
    "bench_tile_reads": [],
    "bench_mil": ["--tiles", "20000", "--dim", "256", "--hidden", "128"],
    "bench_de": [],
}
NEEDS = {"bench_extract": ROOT / "data" / "tiles" / "tcga_synth",
         "bench_tile_reads": ROOT / "data" / "tiles" / "cptac_synth"}


def run_one(name: str, extra: list[str], out_dir: Path, script_dir: Path = HERE) -> dict[str, object]:
    out = out_dir / f"{name}.json"
    need = NEEDS.get(name)
    if need is not None and not need.exists():
        print(f"[bench] {name}: skipped ({need.relative_to(ROOT)} missing: run `dvc repro` first)", flush=True)
        return {"status": "skipped", "reason": f"{need.relative_to(ROOT)} missing"}
    cmd = [sys.executable, str(script_dir / f"{name}.py"), *extra, "--out", str(out)]
    print(f"[bench] {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    seconds = time.perf_counter() - t0
    entry: dict[str, object] = {"status": "ok" if proc.returncode == 0 else "failed", "returncode": proc.returncode,
                                "seconds": round(seconds, 1), "result_file": str(out.relative_to(ROOT))
                                if out.is_relative_to(ROOT) else str(out)}
    if proc.returncode == 0 and out.exists():
        entry["result"] = json.loads(out.read_text())
    print(f"[bench] {name}: {entry['status']} in {seconds:.0f} s", flush=True)
    return entry


def run_all(benchmarks: dict[str, list[str]], out_dir: Path, script_dir: Path = HERE) -> dict[str, dict]:
    """Run each benchmark in turn; write and return ``summary.json`` (name → status, seconds, result)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {name: run_one(name, extra, out_dir, script_dir) for name, extra in benchmarks.items()}
    write_json(out_dir / "summary.json", results)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run just these benchmarks")
    ap.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    results = run_all({n: BENCHMARKS[n] for n in names}, args.out_dir.resolve())
    width = max(len(n) for n in results)
    print("\n".join(f"{n:{width}s}  {r['status']:7s}  {r.get('seconds', '-')} s" for n, r in results.items()))
    print(f"results: {args.out_dir / 'summary.json'}")
    return 1 if any(r["status"] == "failed" for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
