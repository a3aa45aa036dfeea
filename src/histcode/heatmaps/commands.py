"""CLI: ``histcode heatmap --slide ID`` renders one slide's attention heatmap, galleries and GeoJSON."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("heatmap")
    def heatmap_cmd(
        slide: str = typer.Option(..., help="slide_id from the cohort manifest"),
        cohort: str = typer.Option(None, help="cohort (default: base.train_cohort)"),
        pooling: str = typer.Option(None, help="attention of which MIL pooling (default: mil.pooling)"),
        out: Path = typer.Option(None, help="output dir (default reports/figures/heatmaps/<slide>)"),
        geojson: bool = typer.Option(True, help="also write tiles.geojson for QuPath"),
        params: Path = typer.Option(Path("params.yaml")),
    ) -> None:
        """Attention heatmap on the thumbnail + highest/lowest-attention tile galleries (+ GeoJSON)."""
        import dataclasses

        from histcode.config import base, load_params, section
        from histcode.heatmaps.config import HeatmapConfig
        from histcode.heatmaps.slide import render_slide
        from histcode.heatmaps.stage import primary_pooling
        from histcode.io.manifest import read_manifest
        from histcode.paths import Paths

        p = load_params(params)
        bcfg = base(p)
        cfg = dataclasses.replace(section(HeatmapConfig, "heatmaps", p), geojson=geojson)
        paths = Paths.from_base(bcfg)
        cohort = cohort or bcfg.train_cohort
        pooling = pooling or primary_pooling(p, paths)
        manifest = read_manifest(paths.slides_csv(cohort)).set_index("slide_id")
        if slide not in manifest.index:
            raise typer.BadParameter(f"{slide!r} is not in {paths.slides_csv(cohort)}")
        files = render_slide(
            manifest.loc[slide, "path"],
            paths.attention_h5(cohort, pooling, slide),
            paths.coords_h5(cohort, slide),
            out or paths.figures("heatmaps") / slide,
            cfg,
            title=f"{slide} ({pooling})",
        )
        for name, path in files.items():
            typer.echo(f"{name}: {path}")
