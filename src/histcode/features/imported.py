"""Feature sets embedded elsewhere (TRIDENT, CLAM) taken in as a HistCode feature set without re-extracting.

``extract.sources.<name>: <folder>`` where the folder holds TRIDENT ``<slide>.h5`` files, or CLAM's
``h5_files/`` / ``pt_files/``: the extract stage converts each slide's file (read by
``histcode.io.features.read_foreign_features``, the format owner) into ``features/<cohort>/<name>/
<slide_id>.h5`` with our attrs, so MIL, DE, heatmaps and the registry read it like any extracted set. A
cohort slide without a file in the folder is recorded in ``failures.csv`` and skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from histcode.features.extract import SlideOutcome

log = logging.getLogger(__name__)

SUFFIXES = (".h5", ".pt")


def feature_files(folder: Path) -> dict[str, Path]:
    """{file stem: path} of the feature files in ``folder`` (TRIDENT) or its CLAM ``h5_files``/``pt_files``
    (h5 preferred: it carries coords)."""
    found: dict[str, Path] = {}
    for sub in (folder / "pt_files", folder / "h5_files", folder):
        if sub.is_dir():
            found.update({p.stem: p for p in sorted(sub.iterdir()) if p.suffix in SUFFIXES and p.is_file()})
    return found


def is_feature_folder(source: str) -> bool:
    """A folder of foreign feature files (not an encoder directory, weight file or ``models:/`` URI)."""
    p = Path(source)
    return (not source.startswith("models:/") and p.is_dir() and not (p / "encoder.json").exists()
            and bool(feature_files(p)))


def _match(files: dict[str, Path], slide_id: str, slide_path: str) -> Path | None:
    """TRIDENT/CLAM name files after the slide file's stem; ours after the slide id."""
    name = Path(str(slide_path)).name
    for key in (slide_id, Path(name).stem, name.split(".")[0]):
        if key in files:
            return files[key]
    return None


def import_feature_set(name: str, folder: Path, manifest: pd.DataFrame, out_dir: Path, *, cohort: str,
                       dtype: str = "float16") -> list[SlideOutcome]:
    """Convert the folder's file of every manifest slide (``slide_id``, ``path``, optional ``mpp``) into
    ``out_dir/<slide_id>.h5``; one outcome per slide; an error if no slide had a usable file."""
    from histcode.features.resume import file_digest
    from histcode.io.features import (
        FeaturesError,
        read_foreign_features,
        trident_coords_attrs,
        write_features,
    )

    files = feature_files(folder)
    outcomes: list[SlideOutcome] = []
    for row in manifest.itertuples(index=False):
        sid = str(row.slide_id)
        src = _match(files, sid, str(row.path))
        if src is None:
            outcomes.append(SlideOutcome(sid, "failed", 0, 0, f"{folder}: no feature file for slide {sid}"))
            continue
        try:
            feats, coords, fattrs = read_foreign_features(src)
        except FeaturesError as exc:
            outcomes.append(SlideOutcome(sid, "failed", 0, 0, str(exc)))
            continue
        if "patch_size_level0" not in fattrs:
            outcomes.append(SlideOutcome(sid, "failed", len(coords), 0, f"{src}: no patch size in the coords "
                                         "attrs (TRIDENT patch_size_level0 or CLAM patch_size + patch_level)"))
            continue
        level0 = int(fattrs["patch_size_level0"])
        tile_px = int(fattrs.get("patch_size", level0)) if fattrs["format"] == "trident" else level0
        target_mag = float(fattrs.get("target_magnification", -1) or -1)
        target_mpp = 10.0 / target_mag if target_mag > 0 else -1.0
        slide_mpp = float(getattr(row, "mpp", float("nan")) or float("nan"))
        attrs = {"encoder": name, "encoder_uri": f"{fattrs['format']}:{src.resolve()}", "dim": feats.shape[1],
                 "tile_px": tile_px, "target_mpp": target_mpp, "patch_size": level0, "cohort": cohort,
                 "source_format": fattrs["format"], "encoder_fingerprint": f"import:{file_digest(src)}"}
        coords_attrs = trident_coords_attrs(sid, patch_size_level0=level0, tile_px=tile_px, target_mpp=target_mpp,
                                            slide_mpp=slide_mpp if slide_mpp == slide_mpp else None,
                                            savetodir=out_dir)
        for key in ("level0_magnification", "target_magnification"):  # keep the source's own header values
            if key in fattrs:
                coords_attrs[key] = fattrs[key]
        write_features(out_dir / f"{sid}.h5", feats, coords, attrs, dtype=dtype, coords_attrs=coords_attrs)
        outcomes.append(SlideOutcome(sid, "done", len(coords), 0, ""))
        log.info("import %s: %s ← %s (%d tiles, %d-d)", name, sid, src, len(coords), feats.shape[1])
    if not any(o.status == "done" for o in outcomes):
        raise FileNotFoundError(f"{folder}: no feature file matched any slide of {cohort} (files are matched by "
                                "slide_id or the slide file's stem); check extract.sources.")
    return outcomes
