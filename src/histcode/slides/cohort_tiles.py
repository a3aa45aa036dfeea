"""A cohort's tile grids: the manifest paired with its coords files (``collect_slides``), without torch.

Extraction and pretraining read their slides through this; the extract stage also uses it to decide, before
importing torch, that every slide is already done (``histcode.features.resume``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histcode.paths import Paths


@dataclass(frozen=True)
class SlideTiles:
    """One slide's tile grid: coords (N, 2) int32 level-0 top-left, square side ``patch_size`` level-0 px."""

    slide_id: str
    path: Path
    coords: np.ndarray
    patch_size: int
    attrs: dict[str, Any]
    mpp: float | None = None
    default_mpp: float | None = None

    @property
    def n(self) -> int:
        return int(self.coords.shape[0])


@dataclass(frozen=True)
class SlideFailure:
    slide_id: str
    stage: str
    reason: str


def collect_slides(cohort: str, *, paths: Paths, default_mpp: float | None = None,
                   slide_ids: list[str] | None = None) -> tuple[list[SlideTiles], list[SlideFailure]]:
    """Pair the cohort manifest with its coords files; slides without usable coords become failures.

    Reads ``data/manifests/<cohort>/slides.csv`` (slide_id, path, ..., mpp) and ``data/tiles/<cohort>/
    <slide_id>.h5`` (DESIGN §4). Slides with zero tiles are skipped silently (nothing to embed).
    """
    from histcode.io.coords import read_coords
    from histcode.io.manifest import read_manifest, valid_mpp

    df = read_manifest(paths.slides_csv(cohort))
    if slide_ids is not None:
        df = df[df["slide_id"].isin(set(slide_ids))]
    slides: list[SlideTiles] = []
    failures: list[SlideFailure] = []
    for row in df.itertuples(index=False):
        sid = str(row.slide_id)
        try:
            coords, attrs = read_coords(paths.coords_h5(cohort, sid))
            patch = attrs.get("patch_size")
            if patch is None or int(patch) <= 0:
                raise ValueError(f"{paths.coords_h5(cohort, sid)}: attr patch_size missing; re-run tiling.")
        except Exception as exc:  # one bad slide never stops the cohort
            failures.append(SlideFailure(sid, "coords", f"{type(exc).__name__}: {exc}"))
            continue
        if coords.shape[0] == 0:
            continue
        slides.append(SlideTiles(sid, Path(str(row.path)), coords, int(patch), attrs,
                                 mpp=valid_mpp(row.mpp), default_mpp=default_mpp))
    return slides, failures
