"""Screenshots of the MLflow UI as a user sees it after ``make demo``: MIL compare view and the registry.

Starts the ``make ui`` server (sqlite store + artifacts of ``--store``) on a free loopback port (127.0.0.2, see
``RETURNING_USER_HOST``), drives Debian's headless Chromium (``apt-get install -y chromium``; no other download)
with ``--screenshot``, reports the JavaScript errors each page logs (a broken section) and writes:

- ``experiment_mil.png``: the MIL experiment's runs table, the first page a user opens;
- ``compare_mil.png``: the compare view of the MIL runs, one per (pooling, encoder), params and metrics;
- ``registry_<model>.png``: the registered model's versions with their aliases;
- ``registry_<model>_champion.png``: the champion version's page (lineage tags, evidence, gate tags);
- ``tile_contact_sheet.png``: the latest tile run's artifacts with its first contact sheet of masks open;
- ``mil_run.png``: the latest train_mil parent run's page, which opens on Table 1 with its CIs (its description);
- ``de_train_run.png``: the latest train_de run's page, which opens on the registered method and every DE method's
  held-out numbers on the same folds (its description);
- ``de_run.png``: the latest evaluate_de run's page: the result lines ``histcode summary`` prints as its description,
  then its metrics (the overall tests against random and the CV null);
- ``external_run.png``: the latest ``make eval-cptac`` run's page (its metrics, among them how many slides were left
  out as seen in training);
- ``tune_run.png``: the latest Optuna study's parent run (``tune_mil`` or ``histcode tune de``): its held-out verdict
  tag, the interval of the tuned settings' gain and the apply command.

Usage (from the project root, after ``make demo``)::

    .venv/bin/python benchmarks/ui_screenshots.py [--store mlruns] [--out reports/figures/ui]

Open the PNGs and look: the compare view must list attention vs mean vs max (and the encoders) side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

MIL_EXPERIMENT = "histcode/mil"
TILE_EXPERIMENT = "histcode/tile"
DE_EXPERIMENT = "histcode/de"
TUNE_EXPERIMENT = "histcode/tune"
EXTERNAL_EXPERIMENT = "histcode/external"
# run pages shot as a user opens them: (experiment, which run (MLflow search), picture, window size, what is missing)
RUN_PAGES = (
    (MIL_EXPERIMENT, "attributes.run_name LIKE 'train_mil/%'", "mil_run.png", "1900,1600", "train_mil run"),
    (DE_EXPERIMENT, "attributes.run_name LIKE 'train_de-%'", "de_train_run.png", "1900,1600", "train_de run"),
    (DE_EXPERIMENT, "metrics.wilcoxon_p >= 0", "de_run.png", "1900,2400", "evaluate_de run with metrics"),
    (TUNE_EXPERIMENT, "attributes.run_name LIKE 'tune_%/%'", "tune_run.png", "1900,2000",  # a study, not a trial
     "study (`make tune` or `histcode tune de`)"),
    (EXTERNAL_EXPERIMENT, "attributes.status = 'FINISHED'", "external_run.png", "1900,2000", "run (`make eval-cptac`)"),
)
MODELS = ("histcode-mil", "histcode-encoder", "histcode-de")
# MLflow 3.17 opens its Assistant panel (a third of the window) on a browser's first visit to a page served from
# localhost/127.0.0.1/::1; closing it once keeps it closed (local storage). Each screenshot is a fresh browser, so
# the pages are served on another loopback address, which shows them as a returning user who closed it does.
RETURNING_USER_HOST = "127.0.0.2"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("error: no headless Chromium found: `apt-get install -y chromium` (Debian) and rerun.")


def start_ui(store: Path, port: int, host: str) -> subprocess.Popen[bytes]:
    """The ``make ui`` command on ``store`` (sqlite db + artifacts), bound to ``host`` (a loopback address)."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [str(Path(sys.executable).with_name("mlflow")), "ui",
           "--backend-store-uri", f"sqlite:///{(store / 'mlflow.db').resolve()}",
           "--default-artifact-root", str((store / "artifacts").resolve()),
           "--host", host, "--port", str(port), "--workers", "1", "--allowed-hosts", f"{host}:{port}",
           "--cors-allowed-origins", f"http://{host}:{port}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"error: `mlflow ui` on {store} did not start (is {store / 'mlflow.db'} an MLflow store?)")
        time.sleep(0.5)


def mil_runs(client, max_runs: int = 8) -> tuple[str, list]:  # type: ignore[no-untyped-def]
    """The latest run per (pooling, encoder) that has metrics; fold runs only when no per-method run exists."""
    exp = client.get_experiment_by_name(MIL_EXPERIMENT)
    if exp is None:
        sys.exit(f"error: no experiment {MIL_EXPERIMENT!r} in the store: run `dvc repro` (train_mil) first.")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=500)

    def key(r):  # type: ignore[no-untyped-def]
        p, t = r.data.params, r.data.tags
        return (p.get("pooling") or t.get("pooling"), p.get("encoder") or t.get("encoder"))

    usable = [r for r in runs if key(r)[0] and "auc" in r.data.metrics]  # plain metrics: comparable columns
    method_runs = [r for r in usable if not r.data.tags.get("fold", "").isdigit()]
    chosen: dict = {}
    for r in method_runs or usable:
        chosen.setdefault(key(r), r)
    if not chosen:
        sys.exit(f"error: {MIL_EXPERIMENT} has no run with a pooling and metrics to compare.")
    return exp.experiment_id, sorted(chosen.values(), key=lambda r: tuple(map(str, key(r))))[:max_runs]


def latest_contact_sheet_run(client):  # type: ignore[no-untyped-def]
    """The newest tile run that logged contact sheets (older runs logged single masks), or None."""
    exp = client.get_experiment_by_name(TILE_EXPERIMENT)
    if exp is None:
        return None
    for run in client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=50):
        if any(a.path == "masks/contact_sheet_p01.jpg" for a in client.list_artifacts(run.info.run_id, "masks")):
            return run
    return None


def latest_run(client, experiment: str, where: str = "attributes.status = 'FINISHED'"):  # type: ignore[no-untyped-def]
    """The newest run of ``experiment`` matching ``where`` (MLflow search syntax), or None."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], where, order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def model_training_view(url: str) -> str:
    """``url`` in MLflow 3.17's "Model training" sidebar: a fresh browser starts on "GenAI", which hides the
    registry (the switch lives in local storage; the UI reads a ``workflowType`` query parameter first)."""
    route = url.split("#", 1)[-1]
    return f"{url}{'&' if '?' in route else '?'}workflowType=machine_learning"


def page_errors(chrome_log: str) -> list[str]:
    """The page's JavaScript errors in Chromium's console log (a section of the page that broke), not its
    rendering notices (software WebGL)."""
    errors = []
    for line in chrome_log.splitlines():
        if ":CONSOLE" in line and "Error" in line and "WebGL" not in line:
            errors.append(line.split("] ", 1)[-1].strip())
    return errors


def screenshot(chrome: str, url: str, out: Path, size: str, wait_ms: int) -> list[str]:
    """Write ``out`` and return the JavaScript errors the page logged while loading."""
    out.parent.mkdir(parents=True, exist_ok=True)
    url = model_training_view(url)
    with tempfile.TemporaryDirectory(prefix="histcode-chromium-") as profile:
        cmd = [chrome, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={size}",
               "--enable-logging=stderr", "--v=0",
               f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url]
        res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=180)
    if res.returncode != 0 or not out.exists():
        sys.exit(f"error: chromium failed on {url}: {res.stderr.strip()[-500:]}")
    errors = page_errors(res.stderr)
    print(f"wrote {out}  ({url})")
    for e in errors:
        print(f"  page error: {e}")
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=Path("mlruns"), help="project MLflow store (sqlite + artifacts)")
    ap.add_argument("--out", type=Path, default=Path("reports/figures/ui"))
    ap.add_argument("--size", default="1900,1000", help="browser window width,height in px")
    ap.add_argument("--host", default=RETURNING_USER_HOST,
                    help="loopback address to serve and browse on; 127.0.0.1 shows a first visit (Assistant open)")
    ap.add_argument("--wait-ms", type=int, default=20000, help="virtual time the page gets to load its data")
    args = ap.parse_args(argv)

    import mlflow

    chrome = chromium_binary()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{(args.store / 'mlflow.db').resolve()}")
    exp_id, runs = mil_runs(client)
    try:
        port = free_port(args.host)
    except OSError:  # 127.0.0.2 is loopback on Linux; other systems may route only 127.0.0.1
        print(f"note: cannot bind {args.host}; using 127.0.0.1 (pictures will show MLflow's Assistant panel)")
        args.host = "127.0.0.1"
        port = free_port(args.host)
    proc = start_ui(args.store, port, args.host)
    base = f"http://{args.host}:{port}/#"
    errors: list[str] = []
    try:
        ids = json.dumps([r.info.run_id for r in runs])
        query = urllib.parse.urlencode({"runs": ids, "experiments": json.dumps([exp_id])})
        errors += screenshot(chrome, f"{base}/experiments/{exp_id}/runs", args.out / "experiment_mil.png",
                             args.size, args.wait_ms)
        errors += screenshot(chrome, f"{base}/compare-runs?{query}", args.out / "compare_mil.png", "1900,3000",
                             args.wait_ms)
        for name in MODELS:
            try:
                champion = client.get_model_version_by_alias(name, "champion")
            except mlflow.exceptions.MlflowException:
                champion = None
            if not client.search_model_versions(f"name='{name}'", max_results=1):
                print(f"skip {name}: not registered in {args.store}")
                continue
            errors += screenshot(chrome, f"{base}/models/{name}", args.out / f"registry_{name}.png", args.size,
                                 args.wait_ms)
            if champion is not None:
                errors += screenshot(chrome, f"{base}/models/{name}/versions/{champion.version}",
                                     args.out / f"registry_{name}_champion.png", "1900,1600", args.wait_ms)
        tile = latest_contact_sheet_run(client)
        if tile is None:
            print(f"skip tile contact sheet: no {TILE_EXPERIMENT} run with masks/contact_sheet_p01.jpg")
        else:
            run_url = f"{base}/experiments/{tile.info.experiment_id}/runs/{tile.info.run_id}"
            errors += screenshot(chrome, f"{run_url}/artifacts/masks/contact_sheet_p01.jpg",
                                 args.out / "tile_contact_sheet.png", "1900,1400", args.wait_ms)
        for experiment, where, png, size, missing in RUN_PAGES:
            run = latest_run(client, experiment, where)
            if run is None:
                print(f"skip {png}: no {experiment} {missing}")
                continue
            errors += screenshot(chrome, f"{base}/experiments/{run.info.experiment_id}/runs/{run.info.run_id}",
                                 args.out / png, size, args.wait_ms)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    if errors:
        print(f"{len(errors)} JavaScript error(s) above: a section of those pages is broken; open them and look.")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
