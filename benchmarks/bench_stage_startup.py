"""Time every DVC stage command on outputs that are already complete (issue 18: "a stage command on completed
outputs ≤ 1 s").

DVC skips unchanged stages by itself; this measures what a stage costs when it runs anyway (``histcode <stage>``
by hand, ``dvc repro --force``, a resumed run) and has nothing to do. Every ``cmd`` of ``dvc.yaml`` (``foreach``
expanded over ``params.yaml``) is run from the project root as DVC runs it, interleaved over ``--runs`` rounds;
per run: wall seconds, CPU seconds (user + system of the process tree), peak RSS, whether any declared output
changed (it must not: the outputs were complete), how many MLflow runs it created (it should create none) and
what decided (``stamp``: histcode.stamps; ``resume``: the stage's own per-slide check; ``work``: it ran).
Needs the demo's outputs (``make demo``); run it a first time to settle anything a previous code version left.

    python benchmarks/bench_stage_startup.py [--runs 3] [--settle] [--stage extract@tcga_synth ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from histcode.stamps import STAMP_DIR, stage_specs  # noqa: E402  (the project's reading of dvc.yaml)


def stage_commands() -> dict[str, tuple[str, list[str]]]:
    """``{stage name: (cmd, [declared outs, metrics and plots])}`` with ``foreach`` expanded as ``name@key``."""
    return {name: (spec.cmd, spec.outs) for name, spec in stage_specs(ROOT).items()}


def snapshot(outs: list[str]) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every file under the declared outputs: a stage with nothing to do changes none."""
    files: dict[str, tuple[int, int]] = {}
    for o in outs:
        p = ROOT / o
        for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []):
            if f.is_file():
                st = f.stat()
                files[str(f.relative_to(ROOT))] = (st.st_mtime_ns, st.st_size)
    return files


def mlflow_runs(db: Path = ROOT / "mlruns" / "mlflow.db") -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def time_command(cmd: str, outs: list[str]) -> dict:
    """Run ``cmd`` as DVC does (shell, project root, the venv's ``python`` first on PATH); wall, CPU, peak RSS."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(ROOT / "src"))
    before, runs0 = snapshot(outs), mlflow_runs()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, shell=True, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read() if proc.stdout else b""  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd}: exit {proc.returncode}\n{output.decode(errors='replace')[-3000:]}")
    after = snapshot(outs)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    text = output.decode(errors="replace")
    how = ("stamp" if ": up to date (same params" in text else "resume" if "nothing to do" in text else "work")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "outputs_changed": len(changed), "changed_examples": changed[:3],
            "mlflow_runs_created": mlflow_runs() - runs0, "decided_by": how}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds over all stages")
    parser.add_argument("--stage", action="append", help="only these stages (repeatable; default all)")
    parser.add_argument("--without-stamps", action="store_true", help="remove each stage's stamp before running it, "
                        "so the stage's own check decides (tile, extract: the per-slide resume check)")
    parser.add_argument("--settle", action="store_true", help="first run every command once, unmeasured (records "
                        "the stamps of a workspace made by another code version)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_stage_startup.json")
    args = parser.parse_args()
    stages = stage_commands()
    names = args.stage or list(stages)
    unknown = sorted(set(names) - set(stages))
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; dvc.yaml has {sorted(stages)}")
    runs: dict[str, list[dict]] = {n: [] for n in names}
    if args.settle:
        for name in names:
            res = time_command(*stages[name])
            print(f"settle {name:<22} {res['wall_s']:6.1f} s ({res['decided_by']})", flush=True)
    for r in range(args.runs):
        for name in names:
            cmd, outs = stages[name]
            if args.without_stamps:
                (ROOT / STAMP_DIR / f"{name}.json").unlink(missing_ok=True)
            res = time_command(cmd, outs)
            runs[name].append(res)
            print(f"round {r + 1}/{args.runs} {name:<22} {res['wall_s']:6.2f} s wall {res['cpu_s']:6.2f} s CPU "
                  f"{res['peak_rss_mb']:6.0f} MB  outputs changed {res['outputs_changed']}  "
                  f"MLflow runs +{res['mlflow_runs_created']}  ({res['decided_by']})", flush=True)
    summary = {
        name: {"cmd": stages[name][0],
               "wall_s_median": round(statistics.median(x["wall_s"] for x in rs), 3),
               "cpu_s_median": round(statistics.median(x["cpu_s"] for x in rs), 3),
               "peak_rss_mb_max": round(max(x["peak_rss_mb"] for x in rs), 1),
               "outputs_changed_max": max(x["outputs_changed"] for x in rs),
               "mlflow_runs_created_max": max(x["mlflow_runs_created"] for x in rs),
               "decided_by": sorted({x["decided_by"] for x in rs}),
               "runs": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in x.items()} for x in rs]}
        for name, rs in runs.items()
    }
    result = {"what": "each dvc.yaml stage command on complete outputs (nothing to do)", "runs": args.runs,
              "stamps": not args.without_stamps,
              "cpu_count": os.cpu_count(), "load_avg_1m_end": round(os.getloadavg()[0], 2),
              "python": sys.version.split()[0], "stages": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(n) for n in names)
    print(f"\n{'stage':<{width}}  wall s  CPU s  peak MB  outs changed  MLflow runs")
    for name, s in summary.items():
        print(f"{name:<{width}}  {s['wall_s_median']:6.2f} {s['cpu_s_median']:6.2f} {s['peak_rss_mb_max']:8.0f}"
              f"  {s['outputs_changed_max']:12d}  {s['mlflow_runs_created_max']:11d}")
    print(f"load average (1 min) at the end: {result['load_avg_1m_end']}; command: "
          f"{shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
