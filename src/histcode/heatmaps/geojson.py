"""Tiles with their scores as GeoJSON that QuPath imports (File → Import objects): one square per tile.

Coordinates are level-0 pixels with the origin at the top-left, as QuPath expects; each feature is a
QuPath ``tile`` object whose ``measurements`` hold the scores, so QuPath can colour tiles by them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from histcode.atomic import write_text


def tiles_geojson(
    coords: np.ndarray, patch_size_level0: int, measurements: dict[str, np.ndarray], *, name: str = "tile"
) -> dict[str, Any]:
    """FeatureCollection of closed square polygons (x, y, size) with per-tile measurements."""
    coords = np.asarray(coords).reshape(-1, 2)
    for key, vals in measurements.items():
        if len(vals) != len(coords):
            raise ValueError(f"measurement {key!r} has {len(vals)} values for {len(coords)} tiles")
    s = int(patch_size_level0)
    feats = []
    for i, (x, y) in enumerate(coords.tolist()):
        ring = [[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]
        feats.append(
            {
                "type": "Feature",
                "id": str(i),
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "objectType": "tile",
                    "name": name,
                    "measurements": {k: float(v[i]) for k, v in measurements.items()},
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def write_geojson(
    path: str | Path, coords: np.ndarray, patch_size_level0: int, measurements: dict[str, np.ndarray]
) -> Path:
    write_text(
        path, json.dumps(tiles_geojson(coords, patch_size_level0, measurements), separators=(",", ":"))
    )
    return Path(path)
