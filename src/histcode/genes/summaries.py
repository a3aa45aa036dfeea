"""Slide summaries over all tissue tiles: a DE input that depends on no attention model (issue 14 §1).

The paper's input (top/bottom-l tiles of the tumour-vs-normal model) only sees what that model attends to;
a gene driven by necrosis or nuclear density can sit in tiles it ignores. Summaries describe the whole slide:

* ``mean``: the mean tile feature over **all** tiles (exact, float64 sums);
* ``quantiles``: per-component quantiles of the tiles' projections (tile composition, not only its centre);
* ``proportions``: the share of a slide's tiles nearest each of k prototypes (k-means of tile features).

Projections and prototypes are fitted on the **training patients of each fold only** (``SlideSummaries.design``):
a standardiser + PCA on the training tiles, then k-means in that space. Quantiles and proportions use a seeded
sample of at most ``max_tiles`` tiles per slide; the mean uses every tile (PCA is linear, so the projected mean
is the mean of the projected tiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA


@dataclass(frozen=True)
class SummarySettings:
    """``pca_dim`` components, ``quantiles`` of each, ``n_prototypes`` k-means centres, ``max_tiles`` per slide.

    ``center_slides``: quantiles and prototypes see each slide's tiles minus the slide's mean tile, so a
    slide-wide shift (stain, scanner) moves only the mean part, not the tile composition."""

    pca_dim: int = 16
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    n_prototypes: int = 16
    max_tiles: int = 2000
    center_slides: bool = False


def slide_stats(features: np.ndarray, max_tiles: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mean over all tiles (D,) float64, a sample of <= ``max_tiles`` tiles (M, D) float32) of one bag (N, D)."""
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, D) bag, got shape {features.shape}")
    mean = features.astype(np.float64).mean(axis=0)
    n = features.shape[0]
    idx = np.sort(rng.choice(n, size=max_tiles, replace=False)) if n > max_tiles else np.arange(n)
    return mean, np.asarray(features[idx], dtype=np.float32)


@dataclass
class SummaryTransform:
    """The fitted part of the summaries (standardiser, PCA, prototypes): bags → design rows."""

    center: np.ndarray
    scale: np.ndarray
    pca: PCA
    kmeans: KMeans | None
    quantiles: tuple[float, ...]
    center_slides: bool = False

    def project(self, x: np.ndarray) -> np.ndarray:
        return self.pca.transform((np.asarray(x, dtype=np.float64) - self.center) / self.scale)

    def row(self, mean: np.ndarray, tiles: np.ndarray) -> np.ndarray:
        """One slide's design row: projected mean, quantiles of projected tiles, prototype proportions."""
        z = self.project(tiles - mean if self.center_slides else tiles)
        parts = [self.project(mean[None, :])[0]]
        if self.quantiles:
            parts.append(np.quantile(z, self.quantiles, axis=0).reshape(-1))
        if self.kmeans is not None:
            k = self.kmeans.n_clusters
            parts.append(np.bincount(self.kmeans.predict(z), minlength=k) / len(z))
        return np.concatenate(parts)

    def names(self) -> list[str]:
        d = self.pca.n_components_
        out = [f"mean_pc{i}" for i in range(d)]
        out += [f"q{round(q * 100)}_pc{i}" for q in self.quantiles for i in range(d)]
        if self.kmeans is not None:
            out += [f"proto{j}" for j in range(self.kmeans.n_clusters)]
        return out


@dataclass
class SlideSummaries:
    """Per-patient tile statistics; ``design(train)`` fits the transform on training patients and returns X (P, F)."""

    patient_ids: list[str]
    means: np.ndarray  # (P, D)
    tiles: list[np.ndarray]  # P × (M_i, D)
    settings: SummarySettings = field(default_factory=SummarySettings)

    def fit(self, train: np.ndarray, seed: int) -> SummaryTransform:
        """Standardiser + PCA + k-means on the tiles of patients where ``train`` (P,) is True."""
        train = np.asarray(train, dtype=bool)
        c = self.settings.center_slides
        pool = np.concatenate([t - m if c else t for t, m, keep in zip(self.tiles, self.means, train, strict=True)
                               if keep]).astype(np.float64)
        center = pool.mean(axis=0)
        scale = pool.std(axis=0)
        scale = np.where(scale > 1e-8, scale, 1.0)
        z = (pool - center) / scale
        dim = max(1, min(self.settings.pca_dim, z.shape[0] - 1, z.shape[1]))
        pca = PCA(n_components=dim, random_state=seed).fit(z)
        km = None
        k = min(self.settings.n_prototypes, len(pool))
        if self.settings.n_prototypes > 0 and k >= 2:
            km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(pca.transform(z))
        return SummaryTransform(center, scale, pca, km, tuple(self.settings.quantiles), c)

    def transform(self, tf: SummaryTransform) -> np.ndarray:
        return np.stack([tf.row(m, t) for m, t in zip(self.means, self.tiles, strict=True)]).astype(np.float64)

    def design(self, train: np.ndarray, seed: int) -> np.ndarray:
        """X (P, F) for every patient from a transform fitted on the ``train`` patients only."""
        return self.transform(self.fit(train, seed))


def summaries_from_bags(patient_ids: Sequence[str], bags: Sequence[np.ndarray], settings: SummarySettings,
                        seed: int) -> SlideSummaries:
    """Summaries of one bag (N_i, D) per patient; tile samples drawn with ``default_rng(seed)`` in patient order."""
    if len(patient_ids) != len(bags):
        raise ValueError(f"{len(patient_ids)} patients but {len(bags)} bags")
    dims = {b.shape[1] for b in bags}
    if len(dims) > 1:
        raise ValueError(f"bags have different feature dimensions {sorted(dims)}; re-run extract")
    rng = np.random.default_rng(seed)
    stats = [slide_stats(b, settings.max_tiles, rng) for b in bags]
    means = np.stack([s[0] for s in stats]) if stats else np.zeros((0, 0))
    return SlideSummaries(list(patient_ids), means, [s[1] for s in stats], settings)
