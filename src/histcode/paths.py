"""Every on-disk location of the pipeline, defined once (DESIGN §2 and §4)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """Derived-data layout under ``data_dir`` and ``reports_dir`` (both relative to the project root)."""

    data_dir: Path = Path("data")
    reports_dir: Path = Path("reports")

    @classmethod
    def from_base(cls, base_cfg: object) -> Paths:
        return cls(Path(base_cfg.data_dir), Path(base_cfg.reports_dir))  # type: ignore[attr-defined]

    # inputs and manifests
    @property
    def synthetic(self) -> Path:
        return self.data_dir / "synthetic"

    @property
    def ground_truth(self) -> Path:
        """Synthetic ground truth: read ONLY by evaluation of synthetic cohorts."""
        return self.synthetic / "ground_truth"

    def manifests(self, cohort: str) -> Path:
        return self.data_dir / "manifests" / cohort

    def slides_csv(self, cohort: str) -> Path:
        return self.manifests(cohort) / "slides.csv"

    def rnaseq_csv(self, cohort: str) -> Path:
        return self.manifests(cohort) / "rnaseq.csv"

    # slides
    def tiles(self, cohort: str) -> Path:
        return self.data_dir / "tiles" / cohort

    def coords_h5(self, cohort: str, slide_id: str) -> Path:
        return self.tiles(cohort) / f"{slide_id}.h5"

    def masks(self, cohort: str) -> Path:
        return self.tiles(cohort) / "masks"

    def mask_png(self, cohort: str, slide_id: str) -> Path:
        return self.masks(cohort) / f"{slide_id}.png"

    def process_list(self, cohort: str) -> Path:
        return self.tiles(cohort) / "process_list.csv"

    @property
    def stain_reference(self) -> Path:
        """Fitted stain normaliser (``histcode.slides.stain.load_normalizer``), from the train cohort."""
        return self.data_dir / "stain" / "reference.json"

    # models
    def models(self, name: str) -> Path:
        return self.data_dir / "models" / name

    def checkpoints(self, stage: str) -> Path:
        """Resumable training state, kept outside DVC outs (DVC deletes outs before a stage runs)."""
        return self.data_dir / "checkpoints" / stage

    # features / attention
    def features(self, cohort: str, encoder: str) -> Path:
        """Cohort first so one DVC ``foreach`` out per cohort holds every encoder's features."""
        return self.data_dir / "features" / cohort / encoder

    def features_h5(self, cohort: str, encoder: str, slide_id: str) -> Path:
        return self.features(cohort, encoder) / f"{slide_id}.h5"

    def attention(self, cohort: str, mil_model: str) -> Path:
        return self.data_dir / "attention" / cohort / mil_model

    def attention_h5(self, cohort: str, mil_model: str, slide_id: str) -> Path:
        return self.attention(cohort, mil_model) / f"{slide_id}.h5"

    def gene_attention(self, cohort: str, gene: str) -> Path:
        """Per-gene attention of the per-gene MIL regressors (DE heatmaps)."""
        return self.data_dir / "attention_genes" / cohort / gene

    def external_features(self, cohort: str) -> Path:
        """Features extracted by ``make eval-cptac`` with registry encoders (outside DVC-owned outs)."""
        return self.data_dir / "external" / cohort / "features"

    def splits(self, cohort: str) -> Path:
        return self.data_dir / "splits" / cohort

    # expression
    def expression(self, cohort: str) -> Path:
        return self.data_dir / "expression" / cohort

    # predictions
    def mil_predictions(self, cohort: str) -> Path:
        return self.data_dir / "predictions" / "mil" / f"{cohort}.csv"

    def de_predictions(self, cohort: str) -> Path:
        return self.data_dir / "predictions" / "de" / f"{cohort}.parquet"

    def de_per_gene(self, cohort: str) -> Path:
        return self.data_dir / "predictions" / "de" / f"{cohort}_per_gene.csv"

    # reports (DVC metrics/plots and figures)
    def metrics(self, stage: str) -> Path:
        return self.reports_dir / "metrics" / f"{stage}.json"

    def plots(self, name: str) -> Path:
        return self.reports_dir / "plots" / name

    def figures(self, stage: str) -> Path:
        return self.reports_dir / "figures" / stage

    def tune_best(self, family: str) -> Path:
        """Best hyperparameters of an Optuna study as a params file (``<family>:`` section, full)."""
        return self.reports_dir / "tune" / f"{family}_best.yaml"
