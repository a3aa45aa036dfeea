"""Tile feature extraction: tile dataset over (slide, coords), batched inference, features .h5."""
