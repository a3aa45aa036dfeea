"""Hand-crafted nuclear/stain features: counts of painted nuclei, physical units, glass, and extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from histcode.features.histomics import FEATURES, HistomicsEncoder
from histcode.slides.stain.base import IO
from histcode.slides.stain.macenko import DEFAULT_HE, DEFAULT_MAX_C

COL = {name: i for i, name in enumerate(FEATURES)}


def _paint(px: int, um_per_px: float, nuclei: list[tuple[float, float, float, float]],
           eosin: float = 1.0) -> torch.Tensor:
    """A (1, 3, px, px) tile rendered by Beer-Lambert with the Macenko reference vectors: eosin everywhere and
    discs of haematoxylin ``(x_um, y_um, radius_um, h)``."""
    yy, xx = np.mgrid[0:px, 0:px] * um_per_px
    h = np.zeros((px, px))
    for x, y, r, c in nuclei:
        h[(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = c
    conc = np.stack([h, np.full((px, px), eosin)])  # (2, px, px)
    od = np.einsum("cs,shw->chw", np.asarray(DEFAULT_HE), conc)
    rgb = np.clip(np.round(IO * np.exp(-od) - 1.0), 0, 255) / 255.0
    return torch.from_numpy(rgb[None]).float()


def _lattice(spacing_um: float, side_um: float, radius_um: float, h: float) -> list[tuple[float, float, float, float]]:
    pos = np.arange(spacing_um / 2, side_um - spacing_um / 4, spacing_um)
    return [(float(x), float(y), radius_um, h) for y in pos for x in pos]


def _encode(x: torch.Tensor, um_per_px: float) -> np.ndarray:
    enc = HistomicsEncoder(DEFAULT_HE, DEFAULT_MAX_C, um_per_px=um_per_px).eval()
    with torch.no_grad():
        return enc(x).numpy()[0]


def test_counts_painted_epithelial_nuclei_per_mm2() -> None:
    """64 nuclei (r 4 µm) on a 16 µm lattice in a 128 µm tile: 64 / 0.016384 mm² = 3.91 k/mm²."""
    nuclei = _lattice(16.0, 128.0, 4.0, 2.0)
    f = _encode(_paint(128, 1.0, nuclei), 1.0)
    assert len(nuclei) == 64
    assert f[COL["tissue_frac"]] == pytest.approx(1.0)
    assert f[COL["nuclei_large_k_mm2"]] == pytest.approx(64 / 0.016384 / 1e3, rel=0.1)
    disc_area = np.pi * 16 / 256  # share of the tile covered by nuclei
    assert f[COL["nuclear_frac"]] == pytest.approx(disc_area, abs=0.05)
    assert f[COL["eosin_only_frac"]] == pytest.approx(1 - disc_area, abs=0.08)
    assert f[COL["nuclear_spacing_um"]] == pytest.approx(16.0, rel=0.06)


def test_density_is_in_physical_units_at_any_pixel_size() -> None:
    """The same tissue seen at 1 µm/px (128 px) and 0.5 µm/px (256 px) gives the same densities."""
    nuclei = _lattice(20.0, 128.0, 4.0, 2.0) + [(x + 10, y + 10, 2.5, 3.0) for x, y, _, _ in _lattice(40.0, 118.0,
                                                                                                     0, 0)]
    coarse = _encode(_paint(128, 1.0, nuclei), 1.0)
    fine = _encode(_paint(256, 0.5, nuclei), 0.5)
    for name in ("nuclei_large_k_mm2", "nuclei_small_k_mm2", "nuclear_frac", "tissue_frac"):
        assert fine[COL[name]] == pytest.approx(coarse[COL[name]], rel=0.15), name


def test_dark_small_nuclei_are_lymphocytes_not_pale_nuclei() -> None:
    """Dark round 3 µm-radius nuclei count as dark small nuclei; pale ones of the same size do not."""
    dark = _encode(_paint(128, 1.0, _lattice(16.0, 128.0, 3.0, 0.9 * DEFAULT_MAX_C[0])), 1.0)
    pale = _encode(_paint(128, 1.0, _lattice(16.0, 128.0, 3.0, 0.4 * DEFAULT_MAX_C[0])), 1.0)
    expected = 64 / 0.016384 / 1e3
    assert dark[COL["dark_small_k_mm2"]] == pytest.approx(expected, rel=0.15)
    assert pale[COL["dark_small_k_mm2"]] < 0.1 * expected
    assert pale[COL["nuclei_small_k_mm2"]] == pytest.approx(expected, rel=0.15)  # still nuclei, just not dark


def test_glass_has_no_tissue_and_no_nuclei() -> None:
    glass = torch.full((2, 3, 128, 128), 245 / 255.0)
    enc = HistomicsEncoder(DEFAULT_HE, DEFAULT_MAX_C, um_per_px=1.0).eval()
    with torch.no_grad():
        f = enc(glass).numpy()
    assert f.shape == (2, len(FEATURES)) and np.isfinite(f).all()
    assert (f[:, COL["tissue_frac"]] == 0).all()
    assert (f[:, COL["nuclei_large_k_mm2"]] == 0).all() and (f[:, COL["nuclei_small_k_mm2"]] == 0).all()


def test_bf16_autocast_does_not_change_the_counts() -> None:
    """Extraction runs encoders under bf16 autocast; counting stays in float32."""
    x = _paint(128, 1.0, _lattice(16.0, 128.0, 4.0, 2.0))
    enc = HistomicsEncoder(DEFAULT_HE, DEFAULT_MAX_C, um_per_px=1.0).eval()
    with torch.no_grad():
        ref = enc(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            amp = enc(x)
    assert amp.dtype == torch.float32
    torch.testing.assert_close(amp, ref)


def test_invalid_settings_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="um_per_px"):
        HistomicsEncoder(DEFAULT_HE, DEFAULT_MAX_C, um_per_px=0.0)
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        HistomicsEncoder([[0.6, 0.2]], DEFAULT_MAX_C, um_per_px=1.0)


def test_resolve_encoder_sizes_kernels_from_the_tiles_and_fingerprints_the_reference(tmp_path: Path) -> None:
    from histcode.features.config import ExtractConfig
    from histcode.features.encoders import resolve_encoder
    from histcode.paths import Paths
    from histcode.slides.stain import create_normalizer, save_normalizer

    cfg = ExtractConfig(encoders=["histomics"], input_px=128)
    with pytest.raises(ValueError, match="default_mpp"):
        resolve_encoder("histomics", cfg, Paths(), seed=0, tile_um=None)
    a = resolve_encoder("histomics", cfg, Paths(), seed=0, tile_um=128.0)
    b = resolve_encoder("histomics", cfg, Paths(), seed=0, tile_um=256.0)
    ref = tmp_path / "reference.json"
    norm = create_normalizer("macenko")
    norm.he_ref = torch.tensor([[0.60, 0.20], [0.70, 0.85], [0.40, 0.48]])
    save_normalizer(norm, ref)
    c = resolve_encoder("histomics", cfg, Paths(), seed=0, tile_um=128.0, stain_reference=ref)
    assert a.dim == len(FEATURES) and a.uri.startswith("histomics:128um@128px")
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3  # pixel size and stain vectors are identity
    assert float(a.module.um_per_px) == 1.0 and float(b.module.um_per_px) == 2.0


def test_extraction_writes_histomics_features_per_tile(synth_project: Path) -> None:
    from histcode.features.stage import run_extract
    from histcode.io.features import read_features

    params = {
        "base": {"seed": 11, "train_cohort": "synth",
                 "cohorts": {"synth": {"kind": "barcode", "source_dir": "slides", "slide_dir": "slides"}}},
        "extract": {"encoders": ["histomics"], "input_px": 128, "batch_size": 4, "workers": 0, "threads": 1,
                    "dtype": "float16", "bf16": True, "stain": False, "progress": False},
    }
    metrics = run_extract(params, cohort="synth")
    assert metrics["histomics/slides_done"] == 3
    h5 = next((synth_project / "data/features/synth/histomics").glob("*.h5"))
    feats, _coords, attrs = read_features(h5)
    assert feats.shape == (9, len(FEATURES)) and attrs["encoder"] == "histomics"
    assert str(attrs["encoder_uri"]).startswith("histomics:128um@128px")  # 256 px at 0.5 µm/px
    f = feats.astype(np.float32)
    assert np.isfinite(f).all() and (f[:, COL["tissue_frac"]] > 0.2).any()
    assert (f[:, COL["nuclei_large_k_mm2"]] > 0.5).any()  # the synthetic tissue has nuclei


def test_real_aperio_tiles_count_nuclei_in_a_plausible_range_at_any_pixel_size() -> None:
    """CMU-1 (real Aperio H&E, squamous epithelium): nuclei per mm² in the range of epithelium, and the same
    tissue read at 1 µm/px (the demo's extraction) and 0.5 µm/px gives the same small-nucleus density."""
    import cv2

    from histcode.slides.reader import SlideReader
    from histcode.slides.stain import create_normalizer

    path = Path(__file__).parents[1] / "data" / "CMU-1-Small-Region.svs"
    with SlideReader(path) as r:
        size = round(256 * 0.5 / r.mpp)
        side_um = size * r.mpp
        tiles = np.stack([r.read_tile(x, y, size, 256) for x, y in ((1028, 771), (1285, 771), (1028, 1799))])
    norm = create_normalizer("macenko").fit(list(tiles))
    he, max_c = norm.he_ref.tolist(), norm.max_c_ref.tolist()

    def run(t: np.ndarray, px: int) -> np.ndarray:
        x = norm.transform_batch(torch.from_numpy(t).permute(0, 3, 1, 2).float() / 255)
        with torch.no_grad():
            return HistomicsEncoder(he, max_c, um_per_px=side_um / px).eval()(x).numpy()

    fine = run(tiles, 256)
    coarse = run(np.stack([cv2.resize(t, (128, 128), interpolation=cv2.INTER_AREA) for t in tiles]), 128)
    small = fine[:, COL["nuclei_small_k_mm2"]]
    assert (fine[:, COL["tissue_frac"]] > 0.8).all()
    assert ((small > 3.0) & (small < 12.0)).all(), small  # epithelium: ~3-12 thousand nuclei per mm²
    assert coarse[:, COL["nuclei_small_k_mm2"]].mean() == pytest.approx(small.mean(), rel=0.15)
