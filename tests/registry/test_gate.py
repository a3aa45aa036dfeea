"""The pure promotion decision against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from histcode.registry.gate import GateConfig, decide, metric, paired_bootstrap

CFG = GateConfig(bootstrap=300, seed=1)


def test_metric_matches_sklearn_and_mean(make_evidence) -> None:
    ev = make_evidence(0.8)
    assert metric(ev, "binary") == pytest.approx(roc_auc_score(ev["label"], ev["prob"]))
    per = pd.DataFrame({"id": ["a", "b", "c"], "score": [0.1, 0.3, 0.8]})
    assert metric(per, "per_unit") == pytest.approx(0.4)


def test_first_champion_needs_absolute_threshold(make_evidence) -> None:
    good, bad = make_evidence(0.3), make_evidence(5.0)
    assert decide(good, "binary", 0.8, CFG).promote
    refused = decide(bad, "binary", 0.8, CFG)
    assert not refused.promote and "below absolute threshold" in refused.reason


def test_better_challenger_promoted_worse_refused(make_evidence) -> None:
    champion, better, worse = make_evidence(1.0, seed=1), make_evidence(0.3, seed=2), make_evidence(2.5, seed=3)
    up = decide(better, "binary", 0.5, CFG, champion)
    assert up.promote and up.delta is not None and up.delta > 0 and up.prob_better >= 0.9
    down = decide(worse, "binary", 0.5, CFG, champion)
    assert not down.promote and down.delta is not None and down.delta < 0


def test_margin_blocks_small_gain() -> None:
    champion = pd.DataFrame({"id": list("abcdef"), "score": [0.30, 0.31, 0.29, 0.30, 0.32, 0.28]})
    chal = champion.assign(score=champion["score"] + 0.01)
    assert decide(chal, "per_unit", 0.0, GateConfig(min_delta=0.0, bootstrap=200), champion).promote
    assert not decide(chal, "per_unit", 0.0, GateConfig(min_delta=0.05, bootstrap=200), champion).promote


def test_paired_bootstrap_of_constant_shift_is_that_shift() -> None:
    a = pd.DataFrame({"id": list("abcd"), "score": [0.1, 0.2, 0.3, 0.4]})
    b = a.assign(score=a["score"] + 0.25)
    boot = paired_bootstrap(a, b, "per_unit", 50, 0)
    np.testing.assert_allclose(boot, 0.25)


def test_disjoint_evidence_is_not_comparable(make_evidence) -> None:
    champion = make_evidence(1.0)
    chal = make_evidence(0.2).assign(id=lambda d: "x" + d["id"])
    d = decide(chal, "binary", 0.5, CFG, champion)
    assert not d.promote and "not comparable" in d.reason
