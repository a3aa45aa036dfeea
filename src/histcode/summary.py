"""``histcode summary``: the demo's closing report, read from the DVC metrics files the stages wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _ci(m: dict[str, Any], key: str) -> str:
    if key not in m:
        return "n/a"
    lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{m[key]:.3f}"


def summary_lines(reports: Path, figures: Path) -> list[str]:
    """Human-readable lines summarising tiling, pretraining, MIL, DE and external validation."""
    lines: list[str] = []
    metrics = reports / "metrics"
    for tile_json in sorted((metrics / "tile").glob("*.json")):
        t = _load(tile_json)
        lines.append(f"tiles  {tile_json.stem}: {t.get('n_tiles', 0)} tiles from {t.get('n_done', 0)}/"
                     f"{t.get('n_slides', 0)} slides ({t.get('n_failed', 0)} failed)")
    pre = _load(metrics / "pretrain.json")
    if pre:
        shown = {k: v for k, v in pre.items() if isinstance(v, int | float)}
        keys = [k for k in ("final_loss", "loss", "tiles_per_s", "epochs", "steps") if k in shown]
        lines.append("pretrain: " + ", ".join(f"{k}={shown[k]:.4g}" for k in keys))
    mil = _load(metrics / "mil.json")
    if mil:
        lines.append("tumour vs normal (patient-level CV, held-out slides, 95% bootstrap CI):")
        poolings = sorted({k.split(".")[0] for k in mil if k.endswith(".auc")})
        for p in poolings:
            sub = {k.split(".", 1)[1]: v for k, v in mil.items() if k.startswith(p + ".") and k.count(".") == 1}
            lines.append(f"  {p:16s} AUC {_ci(sub, 'auc')}  accuracy {_ci(sub, 'accuracy')}  "
                         f"balanced acc {_ci(sub, 'balanced_accuracy')}")
    att = _load(metrics / "mil_attention.json")
    if att:
        shown = {k: v for k, v in att.items() if isinstance(v, int | float) and ("precision" in k or "iou" in k)}
        if shown:
            lines.append("attention vs truth: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(shown.items())[:4]))
    de = _load(metrics / "de.json")
    if de:
        lines.append(
            f"differential expression ({int(de.get('n_genes', 0))} genes, {int(de.get('n_patients', 0))} patients): "
            f"median held-out Pearson {de.get('pearson_r_median', float('nan')):.3f} vs random "
            f"{de.get('random_pearson_median', float('nan')):.3f} "
            f"(Wilcoxon p={de.get('wilcoxon_p', float('nan')):.3g}); "
            f"{int(de.get('n_genes_significant_bh', 0))} genes BH-significant"
        )
        if "truth.planted_pearson_median" in de:
            lines.append(
                f"  planted genes median r {de['truth.planted_pearson_median']:.3f} vs null "
                f"{de['truth.null_pearson_median']:.3f} (Wilcoxon p={de['truth.planted_vs_null_wilcoxon_p']:.3g})"
            )
        heat = sorted(k.split(".")[1] for k in de if k.startswith("truth.") and k.endswith(".lymph_auc"))
        if heat:
            lines.append("  per-gene heatmaps vs lymphocyte truth, AUC: " + ", ".join(
                f"{g} {de[f'truth.{g}.lymph_auc']:.2f}" for g in heat))
        genes = [k.split(".", 1)[1] for k in de if k.startswith("pearson_r.")]
        if genes:
            lines.append("  " + ", ".join(f"{g} r={de['pearson_r.' + g]:.2f}" for g in genes))
    for ext in sorted(metrics.glob("eval_*.json")) + sorted(metrics.glob("mil_external_*.json")):
        e = _load(ext)
        lines.append(f"external {ext.stem}: AUC {_ci(e, 'auc')}  accuracy {_ci(e, 'accuracy')}")
    lines.append(f"heatmaps: {figures / 'heatmaps'}   DE figures: {figures / 'de'}")
    lines.append("MLflow UI: `make ui` then open http://127.0.0.1:5000 ; external validation: `make eval-cptac`")
    return lines


def register(app: typer.Typer) -> None:
    @app.command("summary")
    def summary_cmd(reports: Path = typer.Option(Path("reports"), help="Reports directory of the pipeline.")) -> None:
        """Print the pipeline's key results (tumour AUC, DE correlations, where the figures are)."""
        lines = summary_lines(reports, reports / "figures")
        if len(lines) <= 2:
            typer.echo("No results yet: run `dvc repro` (or `make demo`).")
            raise typer.Exit(1)
        typer.echo("\n".join(["", "== HistCode summary ==", *lines]))
