"""``histcode tile``, ``histcode contact-sheets`` and ``histcode stain-ref`` (heavy imports stay inside the
commands)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("tile")
    def tile_cmd(
        cohort: str = typer.Option(..., "--cohort", "-c", help="Cohort name under base.cohorts."),
        workers: int = typer.Option(None, help="Slides at once: threads, or processes when the work pays for them "
                                    "(default tile.workers; 0 = one by one)."),
        shard: str = typer.Option("0/1", help="Job-array shard i/n (0-based): every n-th slide from i."),
        params: Path = typer.Option(Path("params.yaml"), help="params file (sections base, tile)."),
        progress: bool = typer.Option(True, help="Show the per-cohort progress bar."),
    ) -> None:
        """Segment tissue and write tile coords + mask PNGs for a cohort (resumes, skips complete slides)."""
        from histcode.console import summary_line
        from histcode.slides.stage import run_tile
        from histcode.slides.tiling import parse_shard

        metrics = run_tile(cohort, params, workers=workers, shard=parse_shard(shard), progress=progress)
        typer.echo(summary_line(f"tile {cohort}", metrics, "tile"))

    @app.command("contact-sheets")
    def contact_sheets_cmd(
        cohort: str = typer.Option(..., "--cohort", "-c", help="Cohort name under base.cohorts (already tiled)."),
        out: Path = typer.Option(None, help="Folder for the pages (default reports/figures/tiles/<cohort>)."),
        per_page: int = typer.Option(30, help="Slides per page."),
        params: Path = typer.Option(Path("params.yaml"), help="params file (section base)."),
    ) -> None:
        """Every slide's tissue mask on a few JPEG pages, failed slides first, then the fewest tiles first."""
        from histcode.config import base, load_params, section
        from histcode.paths import Paths
        from histcode.slides.config import TileConfig
        from histcode.slides.contact_sheet import write_contact_sheets

        data = load_params(params)
        bcfg = base(data)
        bcfg.cohort(cohort)  # an unknown name fails here, naming the cohorts params.yaml declares
        paths = Paths.from_base(bcfg)
        folder = out or paths.figures("tiles") / cohort
        pages = write_contact_sheets(paths.process_list(cohort), paths.masks(cohort), folder,
                                     f"{cohort}: tissue masks", per_page=per_page,
                                     tile_px=section(TileConfig, "tile", data).tile_px)
        typer.echo(f"contact-sheets {cohort}: {len(pages)} page(s) in {folder}")

    @app.command("stain-ref")
    def stain_ref_cmd(
        params: Path = typer.Option(Path("params.yaml"), help="params file (sections base, stain)."),
    ) -> None:
        """Fit the stain normaliser on train-cohort tiles → data/stain/reference.json."""
        from histcode.console import summary_line
        from histcode.slides.stage import run_stain_ref

        typer.echo(summary_line("stain_ref", run_stain_ref(params)))
