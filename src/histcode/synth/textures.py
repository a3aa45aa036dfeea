"""Seamless periodic texture tiles (fibres, cell mottling, granules, sensor noise), built once per process.

Textures are filtered white noise made in the Fourier domain, so they wrap without seams and any slide
region can read them with a random per-slide offset. Fixed seeds keep every process identical.
"""

from __future__ import annotations

import functools

import numpy as np

TILE = 1024


def _filtered(seed: int, sigma_y_px: float, sigma_x_px: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((TILE, TILE))
    fy = np.fft.fftfreq(TILE)[:, None]
    fx = np.fft.rfftfreq(TILE)[None, :]
    kernel = np.exp(-2 * np.pi**2 * ((fy * sigma_y_px) ** 2 + (fx * sigma_x_px) ** 2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(TILE, TILE))
    return ((out - out.mean()) / (out.std() + 1e-9)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def texture_bank(mpp: float) -> dict[str, np.ndarray]:
    """Unit-variance textures at ``mpp`` µm/px.

    ``fib0``/``fib90``: fibres along x / y (long 7 µm, thin 0.7 µm); ``cell``: ~2 µm mottling of
    cytoplasm; ``gran``: ~0.6 µm granules (necrosis); ``edge``: ~4 µm field for ragged tissue borders;
    ``noise``: white sensor noise.
    """
    fib0 = _filtered(11, 0.7 / mpp, 7.0 / mpp)
    fib0 = np.tanh(1.2 * fib0)  # sharpen fibre contrast
    return {
        "fib0": fib0,
        "fib90": np.ascontiguousarray(fib0.T[::-1]),
        "cell": _filtered(12, 1.8 / mpp, 1.8 / mpp),
        "gran": _filtered(13, 0.6 / mpp, 0.6 / mpp),
        "edge": _filtered(14, 4.0 / mpp, 4.0 / mpp),
        "noise": np.random.default_rng(15).standard_normal((TILE, TILE)).astype(np.float32),
    }


@functools.lru_cache(maxsize=8)
def tiled_bank(mpp: float) -> dict[str, np.ndarray]:
    """:func:`texture_bank` tiled 2×2, so any window up to ``TILE`` on a side is a view (no copy)."""
    return {k: np.tile(v, (2, 2)) for k, v in texture_bank(mpp).items()}


def window(tex2: np.ndarray, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """View of the (h, w) window at (y0, x0) of a periodic texture, given its 2×2 tiling ``tex2``."""
    if h > TILE or w > TILE:
        raise ValueError(f"texture window {h}x{w} exceeds the {TILE}-px period")
    r, c = y0 % TILE, x0 % TILE
    return tex2[r : r + h, c : c + w]
