"""Cross-validated per-gene MIL regressors and their per-gene attention files (heatmap inputs).

For each heatmap gene and fold k, a ``GeneAttentionMIL`` trains on the other folds' patients and writes,
for each held-out patient's slide, ``attention_genes/<cohort>/<gene>/<slide_id>.h5`` with the DESIGN §4
attention layout (``coords``, ``attention_raw``, ``attention``) plus attrs naming gene, fold and the
prediction. So every heatmap comes from a model that never saw that patient.

The fits (genes × folds, plus one final model per gene) are independent and seeded by (gene, fold): with
``workers`` they run at once in spawned processes of ``threads`` torch threads each (one bag per step is too
small to use more threads), and the stage writes the same files as fitting them one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histcode.console import tqdm
from histcode.genes.gene_mil import GeneAttentionMIL, fit_gene_mil, subsample
from histcode.io.attention import write_attention
from histcode.worker_pool import Deferred, torch_pool

log = logging.getLogger(__name__)

BagReader = Callable[[str], tuple[np.ndarray, np.ndarray]]  # slide_id → (features (N, D), coords (N, 2))


@dataclass(frozen=True)
class GeneMILSettings:
    hidden: int = 128
    attn_hidden: int = 64
    lr: float = 5e-4
    weight_decay: float = 1e-4
    epochs: int = 30
    max_tiles: int = 512
    readout: str = "abundance"
    pca_dim: int = 0


FINAL = -1  # fold id of the model fitted on every patient


def _fit(bags: list[np.ndarray], y: np.ndarray, gene: str, settings: GeneMILSettings, seed: int) -> GeneAttentionMIL:
    kw: dict[str, Any] = {k: v for k, v in asdict(settings).items() if k != "max_tiles"}
    return fit_gene_mil(bags, y, gene=gene, seed=seed, **kw)


def gene_mil_cv(
    genes: Sequence[str],
    targets: pd.DataFrame,
    slides: Mapping[str, str],
    folds: Mapping[str, int],
    read_bag: BagReader,
    out_dir: Callable[[str], Path],
    *,
    settings: GeneMILSettings,
    seed: int,
    progress: bool = True,
    workers: int = 0,
    threads: int = 1,
) -> tuple[pd.DataFrame, dict[str, GeneAttentionMIL]]:
    """Held-out per-gene MIL predictions (patient_id, gene, fold, slide_id, y_true_log10fc, y_pred_log10fc)
    and one final model per gene trained on every patient.

    targets: log10(fc+1), index patient_id, a column per gene; slides: patient → tumour slide_id;
    out_dir(gene) → folder for that gene's attention files.
    """
    cols = ["patient_id", "gene", "fold", "slide_id", "y_true_log10fc", "y_pred_log10fc"]
    patients = [p for p in slides if p in targets.index]
    if not genes or not patients:
        return pd.DataFrame(columns=cols), {}
    rng = np.random.default_rng(seed)
    train_bags: dict[str, np.ndarray] = {}
    for p in tqdm(patients, desc="gene MIL bags", disable=not progress, per_item=False):
        feats, _ = read_bag(slides[p])
        train_bags[p] = feats[subsample(len(feats), settings.max_tiles, rng)].astype(np.float16)
    fold_ids = sorted({int(folds[p]) for p in patients})
    pool = torch_pool(workers, threads)
    fits: dict[tuple[str, int], Future[GeneAttentionMIL] | Deferred[GeneAttentionMIL]] = {}
    ys = {gene: targets.loc[patients, gene].to_numpy(dtype=np.float64) for gene in genes}
    try:
        for gi, gene in enumerate(genes):  # every fit submitted at once; consumed below in the serial order
            for k in [*fold_ids, FINAL]:
                train = [i for i, p in enumerate(patients) if folds[p] != k]
                args = ([train_bags[patients[i]] for i in train], ys[gene][train], gene, settings,
                        seed + 1000 * gi + (999 if k == FINAL else k))
                fits[gene, k] = (pool.submit(_fit, *args) if pool is not None
                                 else Deferred(lambda args=args: _fit(*args)))
        rows, finals = [], {}
        for gene in genes:
            y = ys[gene]
            for k in tqdm(fold_ids, desc=f"gene MIL {gene}", disable=not progress):
                model = fits[gene, k].result()
                for i, p in enumerate(patients):
                    if folds[p] != k:
                        continue
                    feats, coords = read_bag(slides[p])
                    pred, scores, weights = model.attend(feats)
                    write_attention(out_dir(gene) / f"{slides[p]}.h5", coords, scores, weights, {
                        "gene": gene, "fold": k, "patient_id": p, "slide_id": slides[p],
                        "model": "gene_attention_mil", "y_pred_log10fc": pred, "y_true_log10fc": float(y[i]),
                    })
                    rows.append({"patient_id": p, "gene": gene, "fold": k, "slide_id": slides[p],
                                 "y_true_log10fc": float(y[i]), "y_pred_log10fc": pred})
            finals[gene] = fits[gene, FINAL].result()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return pd.DataFrame.from_records(rows, columns=cols), finals
