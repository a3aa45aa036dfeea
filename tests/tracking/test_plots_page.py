"""`dvc plots show` offline: the page template holds Vega inline (histcode.plots_page), DVC fills it."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from histcode import plots_page

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("page") / "plots_page.html"
    assert plots_page.write_plots_page(path)
    return path


def test_the_template_needs_no_network_and_dvc_fills_it(template: Path) -> None:
    """DVC's default page loads vega from cdn.jsdelivr.net (blank offline: "vegaEmbed is not defined")."""
    from dvc_render import render_html
    from dvc_render.vega import VegaRenderer

    text = template.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", text)  # nothing fetched
    assert "window.vegaEmbed=" in text  # the global the plot divs call
    assert text.count("{plot_divs}") == 1 and "{refresh_tag}" in text
    renderer = VegaRenderer([{"step": 0, "loss": 1.0, "rev": "workspace", "filename": "loss.csv", "field": "loss"},
                             {"step": 1, "loss": 0.5, "rev": "workspace", "filename": "loss.csv", "field": "loss"}],
                            "loss", x="step", y="loss", template="linear")
    out = template.parent / "index.html"
    render_html([renderer], out, html_template=template)
    page = out.read_text(encoding="utf-8")
    assert "vegaEmbed('#" in page and '"loss"' in page  # DVC's plot div with its spec
    assert "cdn.jsdelivr.net" not in page and not re.search(r"<script[^>]*\bsrc=", page)


def test_the_template_is_kept_while_its_versions_match(template: Path) -> None:
    mtime = template.stat().st_mtime_ns
    assert not plots_page.write_plots_page(template)  # same versions: not rewritten
    assert template.stat().st_mtime_ns == mtime
    template.write_text("<!-- histcode plots-page: vega 0.0 -->\n{plot_divs}\n")  # another vl-convert's
    assert plots_page.write_plots_page(template)
    assert template.read_text(encoding="utf-8").splitlines()[0] == plots_page.versions_line()


def test_dvc_config_points_at_the_template_make_setup_writes() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".dvc" / "config")
    assert (ROOT / ".dvc" / cfg["plots"]["html_template"]).resolve() == (ROOT / plots_page.DEFAULT_PATH).resolve()
    assert "histcode plots-page" in (ROOT / "Makefile").read_text()
