"""Slides: OpenSlide reader, resolution, tissue mask, tile grid, coords store, stain normalisation."""
