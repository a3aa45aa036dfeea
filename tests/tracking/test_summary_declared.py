"""``histcode summary`` reads the metrics files and keys declared in ``histcode.tables.METRICS_FILES``, the
declaration the writer (``tracking.log_metrics``) checks too: run on the committed demo outputs (real stage
outputs), a missing key is reported, an undeclared read is a bug."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from histcode.summary import _Declared, summary_lines
from histcode.tables import METRICS_FILES, metrics_file_of

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"


def test_summary_of_the_committed_demo_outputs_finds_every_declared_key() -> None:
    problems: list[str] = []
    lines = summary_lines(REPORTS, REPORTS / "figures", {"tcga_synth": "train"}, problems)
    assert problems == [] and not [ln for ln in lines if ln.startswith("warning")]
    text = "\n".join(lines)
    for start in ("tiles  tcga_synth:", "features tcga_synth: 48 slides (adco 0 partial / 0 failed, random 0 "
                  "partial / 0 failed)", "pretrain: final loss", "tumour vs normal", "differential expression ("):
        assert start in text, start
    # the values are the files' own: pretrain's epochs come from the trainer's epochs_done
    pre = json.loads((REPORTS / "metrics/pretrain.json").read_text())
    assert f"epochs {pre['epochs_done']:.4g}" in text


@pytest.mark.parametrize(("family", "key"), [("de", "n_patients"), ("pretrain", "epochs_done"), ("mil", "*.auc")])
def test_a_missing_declared_key_is_reported(tmp_path: Path, family: str, key: str) -> None:
    shutil.copytree(REPORTS / "metrics", tmp_path / "metrics")
    path = METRICS_FILES[family].path(tmp_path)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in data.items() if not METRICS_FILES[family].declares(k)
                                or not (k == key or (key.startswith("*.") and k.endswith(key[1:])))}))
    problems: list[str] = []
    lines = summary_lines(tmp_path, tmp_path / "figures", {"tcga_synth": "train"}, problems)
    assert problems == [f"{path}: no key for ['{key}']; rerun its stage"] and lines[-1] == f"warning: {problems[0]}"


def test_slides_with_unreadable_tiles_are_said(tmp_path: Path) -> None:
    """A slide kept with some unreadable tiles (a corrupt JPEG tile) or failed shows in the summary, per encoder."""
    shutil.copytree(REPORTS / "metrics", tmp_path / "metrics")
    path = METRICS_FILES["extract"].path(tmp_path, "tcga_synth")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "adco/slides_partial": 1, "random/slides_failed": 2}))
    lines = summary_lines(tmp_path, tmp_path / "figures", {"tcga_synth": "train"})
    assert ("features tcga_synth: 48 slides (adco 1 partial / 0 failed, random 0 partial / 2 failed); per slide and "
            "reason: failures.csv beside each encoder's features") in lines


def test_reading_an_undeclared_key_is_a_bug() -> None:
    de = _Declared(METRICS_FILES["de"], {"n_genes": 3, "epochs": 2})
    assert de["n_genes"] == 3 and "truth.CD3D.lymph_auc" not in de
    with pytest.raises(KeyError, match="not declared for de"):
        de.get("epochs")


def test_paths_map_back_to_their_declaration() -> None:
    assert metrics_file_of(REPORTS / "metrics/tile/tcga_synth.json") is METRICS_FILES["tile"]
    assert metrics_file_of("reports/metrics/eval_cptac_synth.json") is METRICS_FILES["eval"]
    assert metrics_file_of("reports/metrics/de.json") is METRICS_FILES["de"]
    assert metrics_file_of("reports/metrics/de_targets.json") is None  # not read by summary
    assert metrics_file_of("reports/tables/de.json") is None


def test_the_writer_warns_on_a_missing_declared_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from histcode.tracking import log_metrics

    with caplog.at_level(logging.WARNING, logger="histcode.tracking"):
        drifted = {"final_loss": 1.0, "epochs": 3, "steps": 9, "tiles_per_s": 2.0}  # `epochs`, not epochs_done
        log_metrics(drifted, tmp_path / "metrics/pretrain.json")
    assert "no key for ['epochs_done']" in caplog.text
    assert json.loads((tmp_path / "metrics/pretrain.json").read_text())["epochs"] == 3  # written all the same
