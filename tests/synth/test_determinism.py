"""Same seed → byte-identical cohort, whatever the number of worker processes."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import cv2

from histcode.synth import SynthConfig, generate


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_parallel_generation_is_byte_identical(
    tiny_cohort: Path, tiny_cfg: SynthConfig, tmp_path: Path
) -> None:
    generate(dataclasses.replace(tiny_cfg, workers=2), tmp_path)
    a, b = _digests(tiny_cohort), _digests(tmp_path)
    assert a.keys() == b.keys() and len(a) > 30
    assert a == b


def test_seed_changes_the_cohort(tmp_path: Path) -> None:
    cfg = SynthConfig.tiny(
        seed=7,
        n_patients=2,
        n_patients_external=1,
        n_without_normal=0,
        n_40x=0,
        slide_width=1024,
        slide_height=1024,
    )
    generate(cfg, tmp_path / "a")
    generate(dataclasses.replace(cfg, seed=8), tmp_path / "b")
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    # constant by construction: the region code table, and all-zero maps (no artefacts or lumens on a slide,
    # no tumour nuclei on a normal slide)
    same = {a["ground_truth/region_codes.csv"]}
    maps = ("ground_truth/overlays/", "ground_truth/nuclei/")
    same |= {d for k, d in {**a, **b}.items() if k.startswith(maps) and _blank(tmp_path, k)}
    assert set(a.values()).isdisjoint(set(b.values()) - same)


def _blank(root: Path, rel: str) -> bool:
    return not any(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).any() for p in (root / "a" / rel, root / "b" / rel)
                   if p.exists())
