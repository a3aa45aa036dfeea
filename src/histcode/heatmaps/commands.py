"""CLI: ``histcode heatmaps`` (the heatmaps stage) and ``histcode heatmap --slide ID`` (one slide's attention
heatmap, galleries and GeoJSON)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("heatmaps")
    def heatmaps_cmd(
        params: Path = typer.Option(Path("params.yaml"), help="params file (sections base, heatmaps, mil)."),
        progress: bool = typer.Option(True, help="progress bars"),
    ) -> None:
        """Attention heatmaps of the configured slides (+ attention vs truth on synthetic cohorts)."""
        from histcode.console import summary_line
        from histcode.heatmaps.stage import run_heatmaps

        m = run_heatmaps(params, progress=progress)
        typer.echo(f"{summary_line('heatmaps', m, 'mil_attention')} (rendered {m['n_rendered']}, failed "
                   f"{m['n_failed']}: reports/figures/heatmaps/index.csv)")

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

        from histcode.heatmaps.config import HeatmapConfig
        from histcode.heatmaps.slide import render_slide
        from histcode.heatmaps.stage import primary_pooling
        from histcode.io.manifest import read_manifest
        from histcode.prologue import open_stage

        stage = open_stage("heatmaps", params, HeatmapConfig)
        cfg = dataclasses.replace(stage.cfg, geojson=geojson)
        paths = stage.paths
        cohort = cohort or stage.base.train_cohort
        pooling = pooling or primary_pooling(stage.params, paths)
        manifest = read_manifest(paths.slides_csv(cohort)).set_index("slide_id")
        if slide not in manifest.index:
            raise typer.BadParameter(f"{slide!r} is not in {paths.slides_csv(cohort)}")
        from histcode.io.attention import read_attention_attrs

        attention = paths.attention_h5(cohort, pooling, slide)
        # an external slide: the attention of the model the last `make eval-cptac` evaluated, named in the title
        source = read_attention_attrs(attention).get("model") if attention.is_file() else None
        files = render_slide(
            manifest.loc[slide, "path"],
            attention,
            paths.coords_h5(cohort, slide),
            out or paths.figures("heatmaps") / slide,
            cfg,
            title=f"{slide} ({pooling}{f'; {source}, external' if source else ''})",
        )
        if source:
            typer.echo(f"attention of {source} (the last `histcode evaluate-external --cohort {cohort}`)")
        for name, path in files.items():
            typer.echo(f"{name}: {path}")
