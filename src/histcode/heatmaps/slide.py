"""All figures of one slide: heatmap, top/bottom tile galleries and the QuPath GeoJSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from histcode.heatmaps.config import HeatmapConfig
from histcode.heatmaps.gallery import render_gallery
from histcode.heatmaps.geojson import write_geojson
from histcode.heatmaps.render import read_thumbnail, render_heatmap
from histcode.metrics.attention_truth import outlined_tiles
from histcode.metrics.canvas import normalise_scores
from histcode.metrics.heatmap_values import heatmap_values

_THRESHOLD_NAMES = {"otsu": "above the Otsu threshold", "kittler": "above the minimum-error threshold"}


def render_slide(
    slide_path: str | Path,
    attention_h5: str | Path,
    coords_h5: str | Path,
    out_dir: str | Path,
    cfg: HeatmapConfig,
    *,
    title: str = "",
) -> dict[str, str]:
    """Render ``out_dir/{heatmap.png, top_tiles.png, bottom_tiles.png[, tiles.geojson]}``; returns paths."""
    from histcode.io.attention import read_attention
    from histcode.io.coords import read_coords

    coords, raw, attn, _ = read_attention(attention_h5)
    tile_coords, tattrs = read_coords(coords_h5)
    patch = tattrs.get("patch_size")
    if patch is None:
        raise ValueError(f"{coords_h5}: coords file has no patch_size attribute; re-run tiling")
    if len(tile_coords) == len(coords) and not np.array_equal(tile_coords, coords):
        raise ValueError(
            f"{attention_h5}: tile coords differ from {coords_h5}; features and tiles are out of "
            "sync, re-run extract and train_mil"
        )
    out_dir = Path(out_dir)
    thumb = read_thumbnail(slide_path, cfg.thumb_max_px)
    # the map the truth check scores: same scale, smoothing and threshold (histcode.metrics.attention_truth)
    values = heatmap_values(coords, raw, attn, float(patch), scale=cfg.scale, smooth_tiles=cfg.smooth_tiles)
    smooth = f", smoothed σ = {cfg.smooth_tiles:g} tiles" if cfg.smooth_tiles else ""
    threshold = cfg.truth_threshold
    closed = f", closed over {cfg.close_tiles} tiles" if cfg.close_tiles else ""
    closed += ", holes filled" if cfg.fill_holes else ""
    out = {
        "heatmap": str(
            render_heatmap(
                slide_path,
                coords,
                values,
                float(patch),
                out_dir / "heatmap.png",
                title=title,
                alpha=cfg.alpha,
                cmap=cfg.cmap,
                normalise=cfg.normalise,
                label=f"{cfg.normalise} of {cfg.scale} attention{smooth}",
                thumbnail=thumb,
                region=outlined_tiles(coords, values, float(patch), threshold, cfg.close_tiles, cfg.fill_holes),
                region_label=_THRESHOLD_NAMES.get(str(threshold), f"≥ {threshold} (percentile)") + closed,
            )
        )
    }
    for name, highest in (("top_tiles", True), ("bottom_tiles", False)):
        out[name] = str(
            render_gallery(
                slide_path,
                coords,
                attn,
                int(patch),
                out_dir / f"{name}.png",
                k=cfg.gallery_tiles,
                highest=highest,
                tile_px=cfg.gallery_px,
                title=f"{title}: {'highest' if highest else 'lowest'}-attention tiles",
            )
        )
    if cfg.geojson:
        out["geojson"] = str(
            write_geojson(
                out_dir / "tiles.geojson",
                coords,
                int(patch),
                {
                    "attention": attn,
                    "attention_raw": raw,
                    "attention_percentile": normalise_scores(raw),
                    "heatmap": values,
                },
            )
        )
    return out
