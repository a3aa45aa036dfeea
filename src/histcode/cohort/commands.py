"""``histcode ingest``: build and validate a cohort's manifests (light module: imports happen inside)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        cohort: str = typer.Option(..., "--cohort", help="cohort name under base.cohorts in params.yaml"),
        params: Path = typer.Option(Path("params.yaml"), "--params", help="params file"),
    ) -> None:
        """Sample sheets / barcodes / CPTAC CSV → data/manifests/<cohort>/{slides,rnaseq,failures}.csv."""
        from histcode.cohort.validation import validation_process

        with validation_process():  # great-expectations loads in another process while this one starts
            from histcode.cohort.stage import run_ingest
            from histcode.console import summary_line

            result = run_ingest(cohort, params)
        typer.echo(f"{summary_line(f'ingest {cohort}', result.counts, 'ingest')} (excluded: "
                   f"{result.out_dir / 'failures.csv'})")

    @app.command("idc-manifest")
    def idc_manifest(
        collection: list[str] = typer.Option(..., "--collection", help="IDC collection id, e.g. cptac_brca; repeat "
                                             "it for one cohort of several (--collection cptac_luad --collection "
                                             "cptac_lscc)"),
        out: Path = typer.Option(..., "--out", help="manifest CSV to write (a kind: cptac cohort's slide_sheet)"),
        slide_dir: Path | None = typer.Option(
            None, "--slide-dir", help="where `idc download` put the collection (the cohort's slide_dir); "
            "omitted: plan before downloading (default layout, files not checked)"),
        index: Path | None = typer.Option(
            None, "--index", help="IDC index: idc_index.parquet or a CSV export of a query (default: the one of "
            "the installed idc-index-data package)"),
        keep: str = typer.Option("all", "--preparation", help="all | frozen | ffpe: keep only series of this "
                                 "tissue preparation (TCGA: frozen TS/BS sections are tumour and normal; FFPE DX "
                                 "tumour only)"),
    ) -> None:
        """IDC series index → slide manifest (slide_id,file_name,patient_id,label) + <out>.skipped.csv."""
        import logging

        from histcode.atomic import write_csv
        from histcode.cohort.idc import build_manifest, read_index
        from histcode.cohort.tables import IngestError

        if index is None:
            try:
                import idc_index_data  # type: ignore[import-not-found]
            except ImportError as exc:
                raise IngestError("idc-manifest: pass --index (idc_index.parquet or a CSV export of an IDC query), "
                                  "or pip install idc-index to use the index it brings") from exc
            index = Path(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)
        if keep not in ("all", "frozen", "ffpe"):
            raise IngestError(f"idc-manifest: --preparation {keep!r} is not one of all, frozen, ffpe")
        if slide_dir is not None and not slide_dir.is_dir():
            raise IngestError(f"{slide_dir}: slide directory not found; pass the directory `idc download` wrote "
                              "(or omit --slide-dir to plan before downloading)")
        result = build_manifest(read_index(index), collections=collection, slide_dir=slide_dir, keep=keep)
        skipped = out.with_name(f"{out.stem}.skipped.csv")
        write_csv(out, result.manifest)
        write_csv(skipped, result.skipped)
        if slide_dir is None:  # a plan: the series to download, for `idc download-from-selection`
            from histcode.atomic import write_text

            series = out.with_name(f"{out.stem}.series.txt")
            write_text(series, "".join(f"{uid}\n" for uid in result.manifest["series_instance_uid"]))
            size = f" ({result.counts['size_mb'] / 1000:,.0f} GB)" if result.counts["size_mb"] >= 0 else ""
            typer.echo(f"download them{size}: idc download-from-selection --download-dir <slide_dir> "
                       f"--series-instance-uid \"$(paste -sd, {series})\"")
        if result.warning:
            logging.getLogger("histcode.cohort.idc").warning(result.warning)
        c = result.counts
        typer.echo(f"idc-manifest {' + '.join(collection)}: {c['series']} series → {c['tumor']} tumour + "
                   f"{c['normal']} normal in {out} ({c['frozen']} frozen, {c['ffpe']} FFPE; {c['barcodes']} named by "
                   f"their TCGA slide barcode); skipped {len(result.skipped)} ({c['no_tissue_type']} without tissue "
                   f"type, {c['other_tissue_type']} other tissue, {c['label_mismatch']} whose barcode and description "
                   f"disagree, {c['other_preparation']} of another preparation, {c['not_downloaded']} not downloaded: "
                   f"{skipped})")
