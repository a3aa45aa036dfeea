"""Time each stage of the demo pipeline as `dvc repro` runs it (issue 18: a five-minute demo).

Wraps one real ``dvc repro`` (the command users run), timestamps every ``Running stage '<name>'`` line DVC
prints, and attributes the time between one stage's start and the next one's (or the end) to that stage.
Stages DVC skips (unchanged) cost their check only and are listed as skipped. The wall time, CPU time of the
whole process tree and the load average are recorded: on a shared 2-core machine, CPU seconds are the fair
figure to compare. Memory: every 0.5 s the resident set size (RSS, ``/proc/<pid>/statm``: ~2 ms a sample) of
every process under ``dvc repro`` is summed, and each stage's peak is kept (``peak_rss_mib``: an upper bound,
pages that forked loader workers share with their parent count in each). At each 10 % rise of a stage's RSS,
and near its peak at most every 10 s, the proportional set size is summed too (``peak_pss_mib``; PSS from
``smaps`` splits shared pages between the processes that map them: what a machine really needs; ~100 ms a sample
on torch processes, too dear to take every 0.5 s beside the timings). The sampler's own CPU time is recorded
(``sampler_cpu_s``).

    python benchmarks/bench_demo_stages.py [--force] [--out benchmarks/results/bench_demo_stages.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RUNNING = re.compile(r"Running stage '([^']+)'")
SKIPPED = re.compile(r"Stage '([^']+)' didn't change, skipping")


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


class PeakMemory:
    """Samples the summed RSS of a process and its descendants in a thread; peaks are kept per label."""

    def __init__(self, pid: int, every_s: float = 0.5, pss_every_s: float = 10.0) -> None:
        self.root, self.every_s, self.pss_every_s = psutil.Process(pid), every_s, pss_every_s
        self.label = ""
        self.peaks: dict[str, float] = {}
        self.pss_peaks: dict[str, float] = {}
        self.cpu_s = 0.0
        self._last_pss = -float("inf")
        self._pss_rss: dict[str, float] = {}  # per label: the RSS at which PSS was last taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, pss: bool = False) -> float:
        total = 0
        for p in [self.root, *self.root.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss if pss else p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue  # a process that ended between listing and reading
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.thread_time()
            label, mib = self.label, self._sample()
            if label:
                self.peaks[label] = max(self.peaks.get(label, 0.0), mib)
                now = time.monotonic()
                grew = mib >= 1.1 * self._pss_rss.get(label, 0.0)  # a new high: take PSS now (a few times)
                if grew or (mib >= 0.95 * self.peaks[label] and now - self._last_pss >= self.pss_every_s):
                    self._last_pss, self._pss_rss[label] = now, max(mib, self._pss_rss.get(label, 0.0))
                    self.pss_peaks[label] = max(self.pss_peaks.get(label, 0.0), self._sample(pss=True))
            self.cpu_s += time.thread_time() - t0
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _machine_cpu() -> float:
    """Busy CPU seconds of the whole machine (all processes): per stage on a quiet machine, its CPU seconds."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def time_repro(args: list[str]) -> dict:
    """Run ``dvc repro <args>`` streaming its output; return per-stage wall seconds and totals."""
    # the stages' `python` must be this interpreter (the project's venv) even when the venv is not activated
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(Path(sys.executable).with_name("dvc")), "repro", *args]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    starts: list[tuple[str, float]] = []
    machine_cpu: list[float] = []
    skipped: list[str] = []
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc, PeakMemory(proc.pid) as memory:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            now = time.perf_counter() - t0
            if m := RUNNING.search(line):
                starts.append((m.group(1), now))
                machine_cpu.append(_machine_cpu())
                memory.label = m.group(1)
            elif m := SKIPPED.search(line):
                skipped.append(m.group(1))
        rc = proc.wait()
    machine_cpu.append(_machine_cpu())
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"dvc repro failed with exit code {rc}: see the output above")
    ends = [t for _, t in starts[1:]] + [wall]
    stages = {name: round(end - start, 1) for (name, start), end in zip(starts, ends, strict=True)}
    # cores busy per stage: machine CPU seconds over wall seconds (1.0 = one core idle on a 2-core machine)
    stage_cpu = {name: round(b - a, 1)
                 for (name, _), a, b in zip(starts, machine_cpu[:-1], machine_cpu[1:], strict=True)}
    return {"command": " ".join(["dvc", "repro", *args]), "wall_s": round(wall, 1),
            "cpu_s": round(_children_cpu() - cpu0, 1), "stages_s": stages,
            "stages_machine_cpu_s": stage_cpu,
            "peak_rss_mib": {k: round(v) for k, v in memory.peaks.items()},
            "peak_pss_mib": {k: round(v) for k, v in memory.pss_peaks.items()},
            "sampler_cpu_s": round(memory.cpu_s, 1), "skipped": skipped,
            "load_avg_1m_end": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count()}


def machine(params: Path) -> dict[str, object]:
    """What the figures depend on besides the code: the CPU, its SIMD level, the BLAS kernel OpenBLAS picked
    for it (it changes the synthetic cohort's bytes) and the encoder arithmetic (`bf16: auto` resolved)."""
    import numpy  # noqa: F401  (loads OpenBLAS, so threadpoolctl sees it)
    import threadpoolctl
    import yaml

    from histcode.precision import CPU_BF16_FLAGS, cpu_flags, cpu_info, resolve_bf16

    flags = cpu_flags() or frozenset()
    blas = [f"{i['internal_api']} {i.get('architecture', '?')}" for i in threadpoolctl.threadpool_info()]
    data = yaml.safe_load(params.read_text())
    encoder_bf16 = {key: resolve_bf16(data[key].get("bf16", "auto"), "cpu") for key in ("pretrain", "extract")}
    return {"cpu": (cpu_info() or {}).get("model name", "?"), "avx2": "avx2" in flags,
            "avx512f": "avx512f" in flags, "cpu_bf16_flags": sorted(f for f in flags if f in CPU_BF16_FLAGS),
            "blas": blas, "bf16": encoder_bf16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="rerun every stage (dvc repro --force)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_demo_stages.json")
    args = parser.parse_args()
    result = {"machine": machine(ROOT / "params.yaml"), **time_repro(["--force"] if args.force else [])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    width = max((len(s) for s in result["stages_s"]), default=5)
    print(f"\n{'stage':<{width}}  seconds  cores busy  peak MiB: summed RSS, PSS near it")
    for name, secs in sorted(result["stages_s"].items(), key=lambda kv: -kv[1]):
        busy = result["stages_machine_cpu_s"].get(name, float("nan")) / max(secs, 1e-9)
        print(f"{name:<{width}}  {secs:7.1f}  {busy:10.2f}  {result['peak_rss_mib'].get(name, float('nan')):8.0f}  "
              f"{result['peak_pss_mib'].get(name, float('nan')):8.0f}")
    print(f"{'total':<{width}}  {result['wall_s']:7.1f}  (cpu {result['cpu_s']} s, {len(result['skipped'])} skipped)")


if __name__ == "__main__":
    main()
