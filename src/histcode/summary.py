"""``histcode summary``: the demo's closing report, read from the metrics files the stages wrote.

Only what belongs to this workspace's configuration: cohorts named in ``params.yaml`` (``base.cohorts``), and
external results only when ``make eval-cptac`` ran here after the current MIL results (its JSON is not a
pipeline output and is never committed). Files and keys are those declared in ``histcode.tables.METRICS_FILES``
(the writer, ``tracking.log_metrics``, checks the same declaration).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from histcode.evaluation.result_lines import de_lines
from histcode.tables import CV_NAMES, METRICS_FILES, MetricsFile, key_matches, one_class_auc


class _Declared(dict):  # type: ignore[type-arg]
    """A metrics file read through its declaration: reading a key it does not declare is a bug (KeyError)."""

    def __init__(self, spec: MetricsFile, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.spec = spec

    def _check(self, key: str) -> str:
        if not self.spec.declares(key):
            raise KeyError(f"summary reads {key!r}, not declared for {self.spec.name} in histcode.tables.METRICS_FILES")
        return key

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(self._check(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._check(str(key)))

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(self._check(key), default)

    def matching(self, pattern: str) -> dict[str, Any]:
        """The keys of one declared pattern (``failures/*/duplicate_*``) with their values."""
        if pattern not in (*self.spec.required, *self.spec.optional):
            raise KeyError(f"summary reads {pattern!r}, not declared for {self.spec.name} in histcode.tables."
                           "METRICS_FILES")
        return {k: v for k, v in self.items() if key_matches(k, pattern)}


def _load(reports: Path, family: str, cohort: str = "", problems: list[str] | None = None) -> _Declared:
    """The ``family`` metrics file (``histcode.tables.METRICS_FILES``; {} when absent); a required key it lacks
    is recorded in ``problems`` (a file of an older version, or a writer that drifted)."""
    spec = METRICS_FILES[family]
    path = spec.path(reports, cohort)
    data = json.loads(path.read_text()) if path.exists() else {}
    if data and spec.missing(data) and problems is not None:
        problems.append(f"{path}: no key for {spec.missing(data)}; rerun its stage")
    return _Declared(spec, data)


def _ci(m: dict[str, Any], key: str) -> str:
    if key not in m:
        return "n/a"
    lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{m[key]:.3f}"


def _tune_line(reports: Path, family: str, problems: list[str]) -> str | None:
    """The ``family`` study's best value, which flatters (best of its trials on the folds it was chosen on), and
    what the folds it never searched say about applying it (README, Optuna); None without a study."""
    tune = _load(reports, f"tune_{family}", problems=problems)
    if not tune:
        return None
    line = f"tune {family}: best {tune['objective']} {tune['best_value']:.3f} on the folds it was chosen on"
    if tune.get("heldout_folds"):
        keep = "apply them" if tune.get("heldout_holds") else "keep the current settings"
        gain = (f" (gain 95% interval [{tune['heldout_gain_ci_low']:+.3f}, {tune['heldout_gain_ci_high']:+.3f}])"
                if "heldout_gain_ci_low" in tune else "")
        line += (f"; on {int(tune['heldout_folds'])} held-out fold(s) tuned {tune['heldout_tuned']:.3f} vs "
                 f"current {tune['heldout_current']:.3f}{gain}: {keep}")
    return line + f" (reports/tune/{family}_best.yaml)"


def summary_lines(reports: Path, figures: Path, cohorts: dict[str, str] | None = None,
                  problems: list[str] | None = None) -> list[str]:
    """Human-readable lines summarising tiling, pretraining, MIL, DE and external validation.

    ``cohorts`` maps configured cohort names to their role (train/external); None shows every cohort found.
    Files and keys are those of ``histcode.tables.METRICS_FILES``; a required key a file lacks goes to
    ``problems`` (when given) and to a closing warning line.
    """
    problems = [] if problems is None else problems

    def configured(name: str, role: str | None = None) -> bool:
        return cohorts is None or (name in cohorts and (role is None or cohorts[name] == role))

    lines: list[str] = []
    metrics = reports / "metrics"
    for ingest_json in sorted(METRICS_FILES["ingest"].path(reports, "*").parent.glob("*.json")):
        if not configured(ingest_json.stem):
            continue
        ing = _load(reports, "ingest", ingest_json.stem, problems)
        if ing.get("preparation_confounded"):  # the ingest log's warning says which slides and the fix
            lines.append(f"slides {ingest_json.stem}: tumour vs normal confounded with tissue preparation "
                         f"({int(ing.get('slides_ffpe', 0))} FFPE (DX), {int(ing.get('slides_frozen', 0))} frozen "
                         f"(TS/BS/MS) slides): see base.cohorts.{ingest_json.stem}.preparation in the README")
        copies = {" ".join(k.split("/")[1:]): int(v) for k, v in ing.matching("failures/*/duplicate_*").items()}
        if copies:  # one file under two rows, or two files of one name: failures.csv names each row and the fix
            lines.append(f"slides {ingest_json.stem}: rows left out as duplicates ("
                         + ", ".join(f"{n} {k}" for k, n in sorted(copies.items()))
                         + "): see failures.csv beside the cohort's slides.csv")
        if ing.get("site_confounded"):  # the ingest log's warning has the counts
            lines.append(f"slides {ingest_json.stem}: the tissue source site alone predicts tumour vs normal with "
                         f"AUC {ing['site_only_auc']:.2f}: patient-level CV flatters; see mil.cv_groups: site in the "
                         "README")
    for tile_json in sorted(METRICS_FILES["tile"].path(reports, "*").parent.glob("*.json")):
        if not configured(tile_json.stem):
            continue
        t = _load(reports, "tile", tile_json.stem, problems)
        coarse = int(t.get("n_upsampled", 0))  # warned per slide in the tile log; the contact sheet marks them
        damaged = int(t.get("n_damaged", 0))  # likewise, and their notes are in process_list.csv
        lines.append(f"tiles  {tile_json.stem}: {t.get('n_tiles', 0)} tiles from {t.get('n_done', 0)}/"
                     f"{t.get('n_slides', 0)} slides ({t.get('n_failed', 0)} failed"
                     + (f", {coarse} enlarged from a coarser scan" if coarse else "")
                     + (f", {damaged} damaged: see the reason column of process_list.csv" if damaged else "") + ")")
    for extract_json in sorted(METRICS_FILES["extract"].path(reports, "*").parent.glob("*.json")):
        if not configured(extract_json.stem):
            continue
        ext = _load(reports, "extract", extract_json.stem, problems)
        encoders = sorted({k.split("/")[0] for k in ext if k.endswith("/slides_failed")})
        counts = ", ".join(f"{e} {int(ext.get(f'{e}/slides_partial', 0))} partial / "
                           f"{int(ext.get(f'{e}/slides_failed', 0))} failed" for e in encoders)
        bad = any(ext.get(f"{e}/slides_{kind}", 0) for e in encoders for kind in ("partial", "failed"))
        lines.append(f"features {extract_json.stem}: {int(ext.get('n_slides', 0))} slides ({counts})"
                     + ("; per slide and reason: failures.csv beside each encoder's features" if bad else ""))
    pre = _load(reports, "pretrain", problems=problems)
    if pre:
        labels = {"final_loss": "final loss", "epochs_done": "epochs", "steps": "steps", "tiles_per_s": "tiles/s"}
        lines.append("pretrain: " + ", ".join(f"{label} {pre[k]:.4g}" for k, label in labels.items() if k in pre))
    mil = _load(reports, "mil", problems=problems)
    if mil:
        cv = CV_NAMES[str(mil.get("cv_groups", "patient"))]
        lines.append(f"tumour vs normal ({cv} CV, held-out slides; 95% bootstrap CIs: reports/mil/table1.md):")
        poolings = sorted({k.split(".")[0] for k in mil if k.endswith(".auc")})
        for p in poolings:
            sub = {key: mil[f"{p}.{key}"] for key in ("auc", "accuracy", "balanced_accuracy") if f"{p}.{key}" in mil}
            lines.append(f"  {p:16s} AUC {_ci(sub, 'auc')}  accuracy {_ci(sub, 'accuracy')}  "
                         f"balanced acc {_ci(sub, 'balanced_accuracy')}")
    lines += [line for family in ("mil", "de") if (line := _tune_line(reports, family, problems))]
    att = _load(reports, "mil_attention", problems=problems)
    if att:
        primary = str(mil.get("primary_pooling", "")) if mil else ""
        keys = {"mean_top_k_precision": "top-k precision", "mean_iou": "Otsu IoU"}
        shown = {label: att[f"{primary}.{k}"] for k, label in keys.items() if primary and f"{primary}.{k}" in att}
        if shown:  # the registered model's attention against the tumour bed (every method: mil_attention.json)
            lines.append(f"attention vs truth ({primary}, tumour bed): "
                         + ", ".join(f"{label} {v:.3f}" for label, v in shown.items()))
    de = _load(reports, "de", problems=problems)
    if de:
        lines += de_lines(de)
    mil_json = METRICS_FILES["mil"].path(reports)
    eval_head, _, eval_tail = METRICS_FILES["eval"].path(reports, "{cohort}").name.partition("{cohort}")
    externals = [n for n, role in (cohorts or {}).items() if role == "external"] if cohorts is not None else sorted(
        p.name.removeprefix(eval_head).removesuffix(eval_tail) for p in metrics.glob(f"{eval_head}*{eval_tail}"))
    for cohort in externals:
        ext = METRICS_FILES["eval"].path(reports, cohort)
        if not ext.exists():
            lines.append(f"external {cohort}: not evaluated in this workspace (`make eval-cptac EXTERNAL={cohort}`)")
        else:
            # it evaluates the champions, not this workspace's models: a train_mil rerun alone changes nothing
            # unless `histcode promote` then moved a champion (the registry, which this summary does not open)
            e = _load(reports, "eval", cohort, problems)
            versions = " + ".join(f"{name} v{int(e[key])}" for name, key in (("histcode-encoder", "encoder_version"),
                                                                            ("histcode-mil", "mil_version"))
                                  if isinstance(e.get(key), (int, float)))
            alias = str(e.get("model", "")).partition("@")[2] or "champion"  # `--alias challenger`: not champions
            which = "the champions then" if alias == "champion" else f"@{alias} then, not the champions"
            auc = one_class_auc(e.get("n", 0), e.get("n_pos", 0)) or _ci(e, "auc")
            seen = int(e.get("n_seen_in_training", 0))  # listed per slide in the metrics file
            lines.append(f"external {cohort}: AUC {auc}  accuracy {_ci(e, 'accuracy')}"
                         + (f"  ({versions}, {which})" if versions else "")
                         + (f"; {seen} slide(s) left out, seen in training cohort {e.get('training_cohort')}: "
                            f"see seen_in_training in {ext}" if seen else ""))
            if mil_json.exists() and ext.stat().st_mtime < mil_json.stat().st_mtime:
                lines.append(f"  train_mil has rerun since; if `make promote` moved a champion, rerun "
                             f"`make eval-cptac EXTERNAL={cohort}`")
    lines.append(f"heatmaps: {figures / 'heatmaps'}   DE figures: {figures / 'de'}")
    lines.append("MLflow UI: `make ui` then open http://127.0.0.1:5000 ; external validation: `make eval-cptac`")
    lines += [f"warning: {p}" for p in problems]
    return lines


def register(app: typer.Typer) -> None:
    @app.command("summary")
    def summary_cmd(
        reports: Path = typer.Option(Path("reports"), help="Reports directory of the pipeline."),
        params: Path = typer.Option(Path("params.yaml"), help="params file naming the configured cohorts."),
    ) -> None:
        """Print the pipeline's key results (tumour AUC, DE correlations, where the figures are)."""
        from histcode.config import base

        cohorts = {name: c.role for name, c in base(params).cohorts.items()}
        lines = summary_lines(reports, reports / "figures", cohorts)
        if len(lines) <= 2:
            typer.echo("No results yet: run `dvc repro` (or `make demo`).")
            raise typer.Exit(1)
        typer.echo("\n".join(["", "== HistCode summary ==", *lines]))
