"""Tissue source sites of a TCGA cohort: how much the site alone says about tumour vs normal.

Why: every TCGA slide carries its site's stain, scanner and handling, and sites did not send tumour and normal
tissue in the same proportions (in the real TCGA-LUSC slide sheet, 19 of 35 sites sent tumour slides only). A
model can then score by recognising the site (Howard et al., Nat Commun 2021). The number below is what the
site alone predicts, from the metadata: each slide scored by the tumour share of the *other* patients' slides
of its site (leave one patient out), its AUC against the labels. Near 0.5 the site says nothing; high, patient-
level CV flatters a model, and ``mil.cv_groups: site`` (whole sites per test fold) gives the honest estimate.
"""

from __future__ import annotations

import pandas as pd

from histcode.cohort.barcodes import site_of

SITE_AUC_WARN = 0.6  # the site-only AUC from which ingest warns


def _auc(score: pd.Series, label: pd.Series) -> float:
    """Mann–Whitney AUC of ``score`` for ``label`` 1 vs 0 (ties count half)."""
    ranks = score.rank(method="average")
    n1, n0 = int((label == 1).sum()), int((label == 0).sum())
    return float((ranks[label == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def slide_sites(slides: pd.DataFrame) -> pd.Series:
    """The TCGA tissue source site of each slide's patient (None without a TCGA barcode)."""
    return slides["patient_id"].map(lambda p: site_of(str(p))) if len(slides) else pd.Series([], dtype=object)


def site_only_scores(slides: pd.DataFrame, sites: pd.Series | None = None) -> pd.Series:
    """Per slide (``patient_id``, ``label``; ``sites``: ``slide_sites(slides)`` when already known): the tumour
    share of the other patients' slides of its site, or of the cohort's other patients where its site has no
    other patient."""
    df = pd.DataFrame({"site": slide_sites(slides) if sites is None else sites,
                       "patient": slides["patient_id"].astype(str), "y": slides["label"].astype(float)})
    by_site, by_patient = df.groupby("site")["y"], df.groupby("patient")["y"]
    site_sum, site_n = by_site.transform("sum"), by_site.transform("size")
    own_sum, own_n = by_patient.transform("sum"), by_patient.transform("size")
    rest_sum, rest_n = site_sum - own_sum, site_n - own_n
    cohort = (df["y"].sum() - own_sum) / (len(df) - own_n).where(lambda n: n > 0)
    return (rest_sum / rest_n.where(rest_n > 0)).fillna(cohort)


def summarise(slides: pd.DataFrame, *, cohort: str) -> tuple[dict[str, float], str | None]:
    """``sites`` (TCGA tissue source sites among the slides; 0 without TCGA barcodes), ``sites_one_class`` and,
    where both classes and a site are known for every slide, ``site_only_auc`` and ``site_confounded`` (1 from
    ``SITE_AUC_WARN`` on, with a one-line warning)."""
    sites = slide_sites(slides)
    counts: dict[str, float] = {"sites": int(sites.nunique())}
    if not len(slides) or sites.isna().any():
        return counts, None
    classes = slides.groupby(sites)["label"].nunique()
    counts["sites_one_class"] = int((classes == 1).sum())
    if set(slides["label"].astype(int)) != {0, 1}:
        return counts, None
    scores = site_only_scores(slides, sites)
    if scores.isna().any():  # one patient holds every slide: no other patient to score it by
        return counts, None
    auc = _auc(scores, slides["label"].astype(int))
    counts["site_only_auc"] = round(auc, 4)
    counts["site_confounded"] = int(auc >= SITE_AUC_WARN)
    if not counts["site_confounded"]:
        return counts, None
    return counts, (f"cohort {cohort}: the tissue source site alone predicts tumour vs normal with AUC {auc:.2f} "
                    f"(each slide scored by the tumour share of other patients' slides from its site; "
                    f"{counts['sites_one_class']} of {counts['sites']} sites sent one class only): a model can learn "
                    "a site's stain and scanner for the label; mil.cv_groups: site tests every site on models that "
                    "never saw it (site-preserved CV)")
