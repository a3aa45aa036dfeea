"""Closed ink rings over the tissue (``synth.pen_rings``), as pathologists circle regions: what the tissue benchmark
draws to measure the mask on circled tissue at scale."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from histcode.config import ConfigError
from histcode.io.truth import REGION_CODES
from histcode.synth import SynthConfig
from histcode.synth.layout import TISSUE_CODES, Layout, make_layout

PEN = REGION_CODES["pen_mark"]


def _layout(rings: int) -> Layout:
    return make_layout(np.random.default_rng(11), (288, 224), tumour=True, tumour_fraction=0.4, necrosis_fraction=0.0,
                       lymph_clusters_per_mm2=0.5, cell_um=8.0, tissue_fill=0.8, pen=True, blank=False,
                       pen_rings=rings)


def test_rings_are_closed_loops_drawn_over_tissue_and_change_nothing_else() -> None:
    plain, ringed = _layout(0), _layout(3)
    ring = (ringed.codes == PEN) & (plain.codes != PEN)
    assert ring.sum() > 500
    assert np.array_equal(plain.codes[~ring], ringed.codes[~ring])  # only ink is added
    assert np.isin(ringed.under[ring], TISSUE_CODES).mean() > 0.8  # over the tissue, which the truth keeps beneath
    assert _enclosed(plain.codes == PEN) == 0 and _enclosed(ringed.codes == PEN) >= 3  # closed loops, not arcs


def _enclosed(ink: np.ndarray) -> int:
    """Regions the ink closes off from the slide's border."""
    n, _labels = cv2.connectedComponents(np.pad(~ink, 1, constant_values=True).astype(np.uint8), connectivity=4)
    return n - 2  # minus the label of the ink and the region joined to the border


def test_pen_rings_out_of_range_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"synth\.pen_rings"):
        SynthConfig(pen_rings=-1)
