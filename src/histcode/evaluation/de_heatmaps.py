"""Per-gene attention heatmaps (the paper's Figure 11) drawn with ``histcode.heatmaps``' renderer.

For each heatmap gene we render the ``n`` slides with the highest true log10(fc+1) of that gene (where
the signal should be strongest), each from the fold model that held the patient out. One bad slide is
listed with its reason; the rest are rendered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd

from histcode.io.attention import read_attention_attrs
from histcode.worker_pool import Deferred, process_pool, submit

log = logging.getLogger(__name__)


def gene_dirs(root: Path) -> dict[str, Path]:
    """gene → folder under ``attention_genes/<cohort>/`` (empty when train_de wrote none)."""
    return {d.name: d for d in sorted(root.iterdir()) if d.is_dir()} if root.is_dir() else {}


def pick_slides(folder: Path, n: int) -> list[str]:
    """The ``n`` slide ids with the highest ``y_true_log10fc`` attribute (ties: slide id)."""
    vals = []
    for h5 in sorted(folder.glob("*.h5")):
        vals.append((-float(read_attention_attrs(h5).get("y_true_log10fc", np.nan)), h5.stem))
    vals.sort(key=lambda t: (np.nan_to_num(t[0], nan=np.inf), t[1]))
    return [sid for _, sid in vals[:n]]


def render_gene_heatmaps(dirs: Mapping[str, Path], slide_paths: Mapping[str, str],
                         patch_sizes: Mapping[str, float], out_dir: Path, *, n: int) -> pd.DataFrame:
    """Render ``out_dir/heatmap_<gene>_<slide>.png`` (+ top-tile gallery); index (gene, slide_id, status,
    reason, png)."""
    from histcode.heatmaps.gallery import render_gallery
    from histcode.heatmaps.render import read_thumbnail, render_heatmap
    from histcode.io.attention import read_attention

    rows = []
    thumbs: dict[str, tuple] = {}
    for gene, folder in dirs.items():
        for sid in pick_slides(folder, n):
            png = out_dir / f"heatmap_{gene}_{sid}.png"
            try:
                coords, raw, attn, attrs = read_attention(folder / f"{sid}.h5")
                if sid not in slide_paths or sid not in patch_sizes:
                    raise KeyError(f"{sid}: not in the slides manifest or without a tile coords file")
                if sid not in thumbs:
                    thumbs[sid] = read_thumbnail(slide_paths[sid], 1024)
                title = (f"{gene} attention — {sid} (fold {attrs.get('fold')}, true "
                         f"{float(attrs.get('y_true_log10fc', np.nan)):.2f}, pred "
                         f"{float(attrs.get('y_pred_log10fc', np.nan)):.2f} log10(fc+1))")
                render_heatmap(slide_paths[sid], coords, raw, patch_sizes[sid], png, title=title,
                               thumbnail=thumbs[sid], label=f"{gene} attention percentile")
                render_gallery(slide_paths[sid], coords, attn, int(patch_sizes[sid]),
                               out_dir / f"top_tiles_{gene}_{sid}.png", k=8, highest=True,
                               title=f"{gene}: highest-attention tiles of {sid}")
                rows.append({"gene": gene, "slide_id": sid, "status": "ok", "reason": "", "png": png.name})
            except Exception as exc:  # one bad slide never stops the others
                log.warning("per-gene heatmap %s / %s failed: %s", gene, sid, exc)
                rows.append({"gene": gene, "slide_id": sid, "status": "failed",
                             "reason": f"{type(exc).__name__}: {exc}", "png": ""})
    return pd.DataFrame.from_records(rows, columns=["gene", "slide_id", "status", "reason", "png"])


class GeneHeatmaps:
    """``render_gene_heatmaps`` started on entry in ``workers`` spawned processes (consecutive genes to each), so
    the figures render while the caller computes; ``collect`` returns the index in gene order (None without
    genes). ``workers=0``: rendered here, when collected. Leaving stops the workers not yet done."""

    def __init__(self, dirs: Mapping[str, Path], slide_paths: Mapping[str, str], sizes: Mapping[str, float],
                 out_dir: Path, *, n: int, workers: int) -> None:
        genes, k = list(dirs), max(1, min(workers, len(dirs)))
        self.groups = [{g: dirs[g] for g in genes[i * len(genes) // k:(i + 1) * len(genes) // k]} for i in range(k)
                       ] if genes else []
        self.args = (dict(slide_paths), dict(sizes), out_dir)
        self.n, self.workers = n, workers
        self.pool: ProcessPoolExecutor | None = None
        self.jobs: list[Future[pd.DataFrame] | Deferred[pd.DataFrame]] = []

    def __enter__(self) -> GeneHeatmaps:
        self.pool = process_pool(len(self.groups)) if self.workers > 0 and self.groups else None
        try:
            self.jobs = [submit(self.pool, render_gene_heatmaps, group, *self.args, n=self.n) for group in self.groups]
        except BaseException:  # __exit__ does not run after a failed __enter__
            self._stop()
            raise
        return self

    def collect(self) -> pd.DataFrame | None:
        if not self.jobs:
            return None
        return pd.concat([job.result() for job in self.jobs], ignore_index=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def patch_sizes(coords_h5: Mapping[str, Path]) -> dict[str, float]:
    """slide → level-0 patch size from the tile coords files (slides without one are left out)."""
    from histcode.io.coords import read_coords

    out = {}
    for sid, path in coords_h5.items():
        try:
            size = read_coords(path)[1].get("patch_size")
        except (OSError, ValueError, KeyError) as exc:
            log.warning("no tile coords for %s: %s", sid, exc)
            continue
        if size is not None:
            out[sid] = float(size)
    return out
