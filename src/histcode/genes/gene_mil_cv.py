"""Cross-validated per-gene MIL regressors and their per-gene attention files (heatmap inputs).

For each heatmap gene and fold k, a ``GeneAttentionMIL`` trains on the other folds' patients and writes,
for each held-out patient's slide, ``attention_genes/<cohort>/<gene>/<slide_id>.h5`` with the DESIGN §4
attention layout (``coords``, ``attention_raw``, ``attention``) plus attrs naming gene, fold and the
prediction. So every heatmap comes from a model that never saw that patient.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.console import tqdm
from histcode.genes.gene_mil import GeneAttentionMIL, fit_gene_mil, subsample
from histcode.io.attention import write_attention

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
    for p in tqdm(patients, desc="gene MIL bags", disable=not progress):
        feats, _ = read_bag(slides[p])
        train_bags[p] = feats[subsample(len(feats), settings.max_tiles, rng)].astype(np.float16)
    fold_ids = sorted({int(folds[p]) for p in patients})
    rows, finals = [], {}
    for gi, gene in enumerate(genes):
        y = targets.loc[patients, gene].to_numpy(dtype=np.float64)
        for k in tqdm(fold_ids, desc=f"gene MIL {gene}", disable=not progress):
            train = [i for i, p in enumerate(patients) if folds[p] != k]
            model = fit_gene_mil([train_bags[patients[i]] for i in train], y[train], gene=gene,
                                 hidden=settings.hidden, attn_hidden=settings.attn_hidden, lr=settings.lr,
                                 weight_decay=settings.weight_decay, epochs=settings.epochs,
                                 seed=seed + 1000 * gi + k, readout=settings.readout, pca_dim=settings.pca_dim)
            for i, p in enumerate(patients):
                if folds[p] != k:
                    continue
                feats, coords = read_bag(slides[p])
                pred, scores, weights = model.attend(feats)
                write_attention(out_dir(gene) / f"{slides[p]}.h5", coords, scores, weights, {
                    "gene": gene, "fold": k, "patient_id": p, "slide_id": slides[p], "model": "gene_attention_mil",
                    "y_pred_log10fc": pred, "y_true_log10fc": float(y[i]),
                })
                rows.append({"patient_id": p, "gene": gene, "fold": k, "slide_id": slides[p],
                             "y_true_log10fc": float(y[i]), "y_pred_log10fc": pred})
        finals[gene] = fit_gene_mil([train_bags[p] for p in patients], y, gene=gene, hidden=settings.hidden,
                                    attn_hidden=settings.attn_hidden, lr=settings.lr,
                                    weight_decay=settings.weight_decay, epochs=settings.epochs,
                                    seed=seed + 1000 * gi + 999, readout=settings.readout, pca_dim=settings.pca_dim)
    return pd.DataFrame.from_records(rows, columns=cols), finals
