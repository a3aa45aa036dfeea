"""``histcode plots-page``: the page ``dvc plots show`` writes, with Vega inside it instead of from a CDN.

DVC's default page loads vega, vega-lite and vega-embed from cdn.jsdelivr.net; offline (an air-gapped
cluster, this project's CI) the page stays blank ("vegaEmbed is not defined"). This writes a page template that
holds the three libraries inline (``vl-convert``'s bundle, the Vega project's own), and ``.dvc/config`` points
``plots.html_template`` at it; ``make setup`` writes it. The libraries' versions are on the template's first
line: a template of other versions (an upgraded vl-convert) is rewritten.
"""

from __future__ import annotations

from pathlib import Path

import typer

DEFAULT_PATH = Path(".dvc/tmp/plots_page.html")  # .dvc/config: html_template = tmp/plots_page.html
VEGA_LITE = "5.21"  # DVC's plot templates are Vega-Lite v5 specs


def versions_line() -> str:
    """The first line of the template: which libraries it holds."""
    import vl_convert

    return (f"<!-- histcode plots-page: vega {vl_convert.get_vega_version()}, vega-lite {VEGA_LITE}, "
            f"vega-embed {vl_convert.get_vega_embed_version()} -->")


def page_template(bundle: str, first_line: str) -> str:
    """DVC's page layout (its ``{refresh_tag}`` and ``{plot_divs}`` slots, which DVC fills) with ``bundle`` inline."""
    if "</script" in bundle:  # would close the inline <script> early
        bundle = bundle.replace("</script", "<\\/script")
    return f"""{first_line}
<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <script type="text/javascript">
{bundle}
    </script>
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def write_plots_page(path: Path = DEFAULT_PATH, *, force: bool = False) -> bool:
    """Write the template unless one of the same library versions is there; True when written."""
    from histcode.atomic import write_text

    first = versions_line()
    if not force and path.is_file():
        with path.open(encoding="utf-8") as fh:
            if fh.readline().rstrip("\n") == first:
                return False
    import vl_convert

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, page_template(vl_convert.javascript_bundle(vl_version=VEGA_LITE), first))
    return True


def register(app: typer.Typer) -> None:
    @app.command("plots-page")
    def plots_page_cmd(
        out: Path = typer.Option(DEFAULT_PATH, help="template path (.dvc/config plots.html_template points here)"),
        force: bool = typer.Option(False, "--force", help="rewrite even when the versions match"),
    ) -> None:
        """Write the offline page template of `dvc plots show` (Vega inline, no CDN)."""
        wrote = write_plots_page(out, force=force)
        typer.echo(f"{out}: {'written' if wrote else 'up to date'} ({versions_line()[4:-4].strip()})")
