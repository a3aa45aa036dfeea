"""Gene-level models: DE inputs from top/bottom attention tiles, per-gene heads, per-gene attention MIL."""
