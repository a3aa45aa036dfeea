"""Attention heatmaps on slide thumbnails, tile galleries and GeoJSON export.

``render.render_heatmap`` is the shared renderer (tumour attention here, per-gene attention in the DE
stage); ``canvas`` maps tiles to thumbnail pixels; ``gallery``, ``geojson``, ``slide`` (all figures of one
slide) and ``stage`` (the heatmaps DVC stage, ``histcode heatmap``).
"""
