"""Tissue preparation of TCGA slides: keep the configured kind, and say when it gives the label away.

Why: in TCGA, formalin-fixed paraffin-embedded diagnostic slides (``DX``) exist for tumour samples only, while
normal tissue has frozen sections (``TS``/``BS``/``MS``) only. A cohort that mixes them, as downloading every
"Slide Image" of a project does, lets a tumour-vs-normal model tell FFPE from frozen tissue (fixation, freezing
artefacts, section thickness) and score well without looking at tumour. HistCode's own slide list holds frozen
sections only, which are also the samples the RNA-seq comes from. The preparation is read from the slide
barcode (``histcode.cohort.barcodes``); no GDC sample sheet column holds it. A manifest may state it instead
(``preparation`` column: ``histcode idc-manifest`` writes it from IDC's series descriptions).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from histcode.cohort.barcodes import FFPE, FROZEN, preparation_of

UNKNOWN = "unknown"
_NAMES = {FROZEN: "frozen (TS/BS/MS)", FFPE: "FFPE (DX)", UNKNOWN: "of unknown preparation"}
_CLASS = {1: "tumour", 0: "normal"}


def preparations(slides: pd.DataFrame) -> pd.Series:
    """``frozen``/``ffpe``/``unknown`` per slide: the manifest's ``preparation`` where it states one, else the
    slide id's TCGA barcode."""
    stated = slides["preparation"] if "preparation" in slides.columns else pd.Series(None, index=slides.index)
    return pd.Series([p if isinstance(p, str) and p in _NAMES else preparation_of(str(s)) or UNKNOWN
                      for s, p in zip(slides["slide_id"], stated, strict=True)], index=slides.index, dtype=object)


def select(df: pd.DataFrame, *, cohort: str, keep: str, failures: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of candidate slides (``slide_id``, ``row``, ``file``) whose preparation is ``keep`` (``all`` keeps
    every row); each other row goes to ``failures`` with the reason and the key that decides it."""
    if keep == "all" or not len(df):
        return df
    prep = preparations(df)
    ok = prep == keep
    for (_, r), p in zip(df[~ok].iterrows(), prep[~ok], strict=True):
        why = ("its name holds no TCGA slide barcode section (TS/BS/MS/DX) and the manifest states no preparation"
               if p == UNKNOWN
               else f"it is a {_NAMES[p]} slide")
        failures.append({"table": "slides", "row": r["row"], "file": r["file"], "kind": "excluded_preparation",
                         "reason": f"base.cohorts.{cohort}.preparation is {keep!r} and {why}; set it to 'all' to "
                                   "keep every slide"})
    return df[ok]


def summarise(slides: pd.DataFrame, *, cohort: str, synthetic: bool) -> tuple[dict[str, float], str | None]:
    """Counts per preparation of the kept slides (``slides_frozen``, ``slides_ffpe``, ``slides_preparation_unknown``,
    ``preparation_confounded`` 0/1) and, when a preparation holds one class only while the other class is in the
    cohort, the one-line warning that says so and how to fix it."""
    prep = preparations(slides) if len(slides) else pd.Series([], dtype=object)
    table = Counter(zip(prep, slides["label"].astype(int), strict=True))
    counts: dict[str, float] = {f"slides_{p if p != UNKNOWN else 'preparation_unknown'}":
                                sum(n for (q, _), n in table.items() if q == p) for p in (FROZEN, FFPE, UNKNOWN)}
    known = {p for p, _ in table if p != UNKNOWN}
    classes = {c for _, c in table}
    one_class = sorted(p for p in known if len({c for q, c in table if q == p}) == 1)
    confounded = len(known) == 2 and classes == {0, 1} and bool(one_class)
    counts["preparation_confounded"] = int(confounded)
    if not confounded:
        return counts, None
    parts = []
    for p in (FFPE, FROZEN):
        by_class = ", ".join(f"{table[(p, c)]} {_CLASS[c]}" for c in (1, 0) if table[(p, c)])
        parts.append(f"{_NAMES[p]}: {by_class}")
    both = [p for p in sorted(known) if p not in one_class]
    fix = (f"set base.cohorts.{cohort}.preparation: {both[0]} to train on {_NAMES[both[0]]} slides of both classes"
           if both else "no preparation holds both classes here; for TCGA, add the tumour samples' frozen Tissue "
           f"Slides (TS/BS) and set base.cohorts.{cohort}.preparation: frozen")
    note = (" (synthetic cohort: its generator names tumour slides DX and normal slides TS but renders them alike, "
            "so here only the names differ)" if synthetic else "")
    return counts, (f"cohort {cohort}: tumour vs normal is confounded with tissue preparation ({'; '.join(parts)}): "
                    f"a model can learn FFPE vs frozen instead of tumour; {fix}{note}")
