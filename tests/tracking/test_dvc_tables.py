"""Defect 5: declared DVC metrics are the paper's tables (narrow rows); every DVC plot names its x and y."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from histcode import tables, tracking

ROOT = Path(__file__).resolve().parents[2]


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _declared(kind: str) -> list[tuple[str, str, dict]]:
    out = []
    for name, st in _stages().items():
        body = st.get("do", st)
        for entry in body.get(kind) or []:
            path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            out.append((name, path, opts or {}))
    return out


def test_declared_metrics_are_tables_not_detail() -> None:
    declared = [(s, p) for s, p, _ in _declared("metrics")]
    assert declared, "dvc.yaml declares no metrics"
    for stage, path in declared:
        assert path.startswith("reports/tables/"), f"{stage}: {path} is not a paper table"
        assert tables.table_path(path.replace("reports/tables/", "reports/metrics/")) is not None


def test_log_metrics_writes_detail_and_table(tmp_path: Path) -> None:
    detail = {f"pearson_r.G{i}": 0.1 * i for i in range(80)} | {
        "n_genes": 80, "pearson_r_median": 0.31, "random_pearson_median": 0.01, "wilcoxon_p": 1e-4,
        "n_genes_significant_bh": 12, "auc_median": 0.7123456, "truth.planted_pearson_median": 0.5}
    tracking.log_metrics(detail, tmp_path / "reports" / "metrics" / "de.json")
    assert json.loads((tmp_path / "reports/metrics/de.json").read_text()) == detail
    table = json.loads((tmp_path / "reports/tables/de.json").read_text())
    assert set(table) == {"n_genes", "pearson_r_median", "random_pearson_median", "wilcoxon_p",
                          "n_genes_significant_bh", "auc_median"}  # no CV null: no calibrated overall p
    overall = {"cv_null_overall_p": 0.0476, "cv_null_overall_top_p": 0.0476, "cv_null_overall_z": 2.8}
    tracking.log_metrics(detail | overall, tmp_path / "reports" / "metrics" / "de.json")
    table = json.loads((tmp_path / "reports/tables/de.json").read_text())
    assert table["cv_null_overall_p"] == table["cv_null_overall_top_p"] == 0.0476 and "cv_null_overall_z" not in table
    assert table["auc_median"] == 0.7123
    tracking.log_metrics({"n_slides": 3, "n_done": 3, "n_failed": 0, "n_tiles": 10, "tissue_area_mm2": 1.5,
                          "tiles_per_slide_min": 1}, tmp_path / "reports/metrics/tile/c1.json")
    assert set(json.loads((tmp_path / "reports/tables/tile/c1.json").read_text())) == set(tables.TABLE_KEYS["tile"])


def test_dvc_metrics_show_fits_200_columns(tmp_path: Path) -> None:
    """``dvc metrics show <table>`` of every family, from the committed detail JSON, stays within 200 characters."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, check=True)
    shown = 0
    for family in sorted(tables.TABLE_KEYS):
        detail = sorted((ROOT / "reports" / "metrics").glob(f"{family}.json")) + sorted(
            (ROOT / "reports" / "metrics" / family).glob("*.json"))
        if not detail:
            continue
        rel = detail[0].relative_to(ROOT / "reports" / "metrics")
        table_file = tmp_path / "reports" / "tables" / rel
        table_file.parent.mkdir(parents=True, exist_ok=True)
        table_file.write_text(json.dumps(tables.table(family, json.loads(detail[0].read_text()))))
        out = subprocess.run([dvc, "metrics", "show", str(table_file.relative_to(tmp_path))], cwd=tmp_path,
                             capture_output=True, text=True, check=True).stdout
        assert out.strip() and max(len(line) for line in out.splitlines()) <= 200, out
        shown += 1
    assert shown >= 6, "the committed reports/metrics should cover most table families"


def test_every_plot_names_x_and_y() -> None:
    """No default plots: top-level plots and stage plots (other than images) declare x and y."""
    top = yaml.safe_load((ROOT / "dvc.yaml").read_text()).get("plots") or []
    for entry in top:
        name, spec = next(iter(entry.items()))
        assert spec.get("x") and spec.get("y"), f"top-level plot {name} lacks x/y"
    for stage, path, opts in _declared("plots"):
        if path.endswith((".png", ".svg", ".jpg")):
            continue
        assert opts.get("x") and opts.get("y"), f"{stage}: plot {path} lacks x/y (DVC draws a default plot)"
