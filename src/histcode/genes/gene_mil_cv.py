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
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histcode.console import tqdm
from histcode.genes.gene_mil import GeneAttentionMIL, fit_gene_mil, subsample
from histcode.io.attention import write_attention
from histcode.worker_pool import Deferred, submit, torch_pool

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
COLUMNS = ["patient_id", "gene", "fold", "slide_id", "y_true_log10fc", "y_pred_log10fc"]


def _fit(bags: list[np.ndarray], y: np.ndarray, gene: str, settings: GeneMILSettings, seed: int) -> GeneAttentionMIL:
    kw: dict[str, Any] = {k: v for k, v in asdict(settings).items() if k != "max_tiles"}
    return fit_gene_mil(bags, y, gene=gene, seed=seed, **kw)


class GeneMilCV:
    """The fits start on entering (bags read, every fit submitted to the worker pool) so the caller can work
    beside them; ``collect`` waits for them in the serial order and writes the attention files; leaving the
    block shuts the pool down (unstarted fits cancelled if the caller failed).

    targets: log10(fc+1), index patient_id, a column per gene; slides: patient → tumour slide_id;
    out_dir(gene) → folder for that gene's attention files.
    """

    def __init__(
        self,
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
    ) -> None:
        self.genes, self.targets, self.slides, self.folds = list(genes), targets, slides, folds
        self.read_bag, self.out_dir, self.settings, self.seed = read_bag, out_dir, settings, seed
        self.progress, self.workers, self.threads = progress, workers, threads
        self.patients = [p for p in slides if p in targets.index]
        self.pool: ProcessPoolExecutor | None = None
        self.fits: dict[tuple[str, int], Future[GeneAttentionMIL] | Deferred[GeneAttentionMIL]] = {}
        self.ys: dict[str, np.ndarray] = {}
        self.fold_ids: list[int] = []

    def __enter__(self) -> GeneMilCV:
        if not self.genes or not self.patients:
            return self
        patients, settings = self.patients, self.settings
        rng = np.random.default_rng(self.seed)
        train_bags: dict[str, np.ndarray] = {}
        for p in tqdm(patients, desc="gene MIL bags", disable=not self.progress, per_item=False):
            feats, _ = self.read_bag(self.slides[p])
            train_bags[p] = feats[subsample(len(feats), settings.max_tiles, rng)].astype(np.float16)
        self.fold_ids = sorted({int(self.folds[p]) for p in patients})
        self.ys = {gene: self.targets.loc[patients, gene].to_numpy(dtype=np.float64) for gene in self.genes}
        self.pool = torch_pool(self.workers, self.threads)
        try:
            for gi, gene in enumerate(self.genes):  # every fit submitted at once; consumed in the serial order
                for k in [*self.fold_ids, FINAL]:
                    train = [i for i, p in enumerate(patients) if self.folds[p] != k]
                    args = ([train_bags[patients[i]] for i in train], self.ys[gene][train], gene, settings,
                            self.seed + 1000 * gi + (999 if k == FINAL else k))
                    self.fits[gene, k] = submit(self.pool, _fit, *args)
        except BaseException:  # __exit__ does not run when __enter__ fails: stop the workers here
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None

    def collect(self) -> tuple[pd.DataFrame, dict[str, GeneAttentionMIL]]:
        """Held-out per-gene MIL predictions (patient_id, gene, fold, slide_id, y_true_log10fc, y_pred_log10fc)
        and one final model per gene trained on every patient; writes each held-out slide's attention file."""
        rows, finals = [], {}
        for gene in self.genes if self.fits else []:
            y = self.ys[gene]
            for k in tqdm(self.fold_ids, desc=f"gene MIL {gene}", disable=not self.progress):
                model = self.fits[gene, k].result()
                for i, p in enumerate(self.patients):
                    if self.folds[p] != k:
                        continue
                    sid = self.slides[p]
                    feats, coords = self.read_bag(sid)
                    pred, scores, weights = model.attend(feats)
                    write_attention(self.out_dir(gene) / f"{sid}.h5", coords, scores, weights, {
                        "gene": gene, "fold": k, "patient_id": p, "slide_id": sid,
                        "model": "gene_attention_mil", "y_pred_log10fc": pred, "y_true_log10fc": float(y[i]),
                    })
                    rows.append({"patient_id": p, "gene": gene, "fold": k, "slide_id": sid,
                                 "y_true_log10fc": float(y[i]), "y_pred_log10fc": pred})
            finals[gene] = self.fits[gene, FINAL].result()
        return pd.DataFrame.from_records(rows, columns=COLUMNS), finals
