"""Extraction on the synthetic cohort: values, format, failures, resume, sharding."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from histcode.features.extract import shard
from histcode.features.stage import run_extract
from histcode.io.coords import read_coords
from histcode.io.features import read_features
from histcode.slides.cohort_tiles import SlideTiles
from histcode.slides.reader import SlideReader
from histcode.ssl.backbone import create_encoder

PARAMS = {
    "base": {"seed": 11, "train_cohort": "synth",
             "cohorts": {"synth": {"kind": "barcode", "source_dir": "slides", "slide_dir": "slides"}}},
    "extract": {"encoders": ["random", "imagenet"], "input_px": 32, "batch_size": 4, "workers": 1, "threads": 1,
                "dtype": "float16", "bf16": False, "stain": False, "progress": False},
}


def _slide_ids(root: Path) -> list[str]:
    return pd.read_csv(root / "data/manifests/synth/slides.csv")["slide_id"].tolist()


def test_features_match_the_encoder_on_each_tile(synth_project: Path) -> None:
    metrics = run_extract(PARAMS, cohort="synth")
    assert metrics["random/slides_done"] == 3 and metrics["imagenet/skipped"] == 1  # no local weights
    sid = _slide_ids(synth_project)[0]
    feats, coords, attrs = read_features(synth_project / f"data/features/synth/random/{sid}.h5")
    tile_coords, tile_attrs = read_coords(synth_project / f"data/tiles/synth/{sid}.h5")
    np.testing.assert_array_equal(coords, tile_coords)
    assert feats.dtype == np.float16 and feats.shape == (9, 256)
    assert attrs["encoder"] == "random" and attrs["dim"] == 256
    assert attrs["encoder_uri"] == "random:resnet18_trunc:seed=11"
    assert attrs["tile_px"] == 256 and attrs["target_mpp"] == 0.5
    torch.manual_seed(11)
    enc = create_encoder("resnet18_trunc").eval()
    with SlideReader(synth_project / "slides" / next(p.name for p in (synth_project / "slides").iterdir()
                                                     if p.name.startswith(sid))) as r:
        x = np.stack([r.read_tile(int(a), int(b), tile_attrs["patch_size"], 32) for a, b in coords[:4]])
    with torch.no_grad():
        ref = enc(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()
    np.testing.assert_allclose(feats[:4].astype(np.float32), ref, rtol=2e-2, atol=2e-3)
    report = json.loads((synth_project / "reports/metrics/extract/synth.json").read_text())
    assert report["random/slides_done"] == 3


def test_bad_slides_are_reported_and_the_rest_complete(synth_project: Path) -> None:
    ids = _slide_ids(synth_project)
    slides = pd.read_csv(synth_project / "data/manifests/synth/slides.csv")
    os.remove(slides["path"][0])  # missing slide file
    corrupt = Path(slides["path"][1])  # truncated file: opening fails in the worker
    corrupt.write_bytes(corrupt.read_bytes()[:2048])
    coords, attrs = read_coords(synth_project / f"data/tiles/synth/{ids[2]}.h5")
    from histcode.io.coords import write_coords

    coords[0] = (10**7, 10**7)  # one corrupt tile read (outside the slide) in an otherwise good slide
    write_coords(synth_project / f"data/tiles/synth/{ids[2]}.h5", coords, attrs)
    (synth_project / "data/tiles/synth/extra.h5").write_bytes(b"not hdf5")
    pd.concat([slides, pd.DataFrame([{**slides.iloc[0].to_dict(), "slide_id": "extra"}])]).to_csv(
        synth_project / "data/manifests/synth/slides.csv", index=False)
    params = {**PARAMS, "extract": {**PARAMS["extract"], "encoders": ["random"], "max_bad_tile_frac": 0.2}}
    metrics = run_extract(params, cohort="synth")  # 1/9 bad tiles ≤ 20%: kept as partial
    assert (metrics["random/slides_failed"], metrics["random/slides_partial"]) == (3, 1)
    out = synth_project / "data/features/synth/random"
    assert sorted(p.name for p in out.glob("*.h5")) == [f"{ids[2]}.h5"]
    feats, kept, attrs = read_features(out / f"{ids[2]}.h5")
    assert feats.shape[0] == 8 and attrs["n_failed_tiles"] == 1
    np.testing.assert_array_equal(kept, coords[1:])
    fails = pd.read_csv(out / "failures.csv").set_index("slide_id")
    assert "slide file not found" in fails.loc[ids[0], "reason"]
    assert fails.loc[ids[1], "status"] == "failed" and "corrupt" in fails.loc[ids[1], "reason"]
    assert fails.loc[ids[2], "status"] == "partial" and fails.loc[ids[2], "n_failed_tiles"] == 1
    assert fails.loc["extra", "reason"].startswith("coords:")


def test_rerun_skips_finished_slides(synth_project: Path) -> None:
    params = {**PARAMS, "extract": {**PARAMS["extract"], "encoders": ["random"]}}
    run_extract(params, cohort="synth")
    out = synth_project / "data/features/synth/random"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    victim = sorted(stamps)[0]
    (out / victim).unlink()  # as if interrupted before this slide finished
    metrics = run_extract(params, cohort="synth")
    assert (metrics["random/slides_skipped"], metrics["random/slides_done"]) == (2, 1)
    assert all((out / n).stat().st_mtime_ns == t for n, t in stamps.items() if n != victim)
    shutil.rmtree(out)


def test_retrained_encoder_at_the_same_path_is_not_skipped(synth_project: Path) -> None:
    from histcode.ssl.backbone import save_encoder

    params = {**PARAMS, "extract": {**PARAMS["extract"], "encoders": ["mine"], "sources": {"mine": "enc"}}}
    torch.manual_seed(1)
    save_encoder(create_encoder("resnet18_trunc"), synth_project / "enc", {"method": "adco"})
    assert run_extract(params, cohort="synth")["mine/slides_done"] == 3
    assert run_extract(params, cohort="synth")["mine/slides_skipped"] == 3
    torch.manual_seed(2)  # "re-trained": new weights, same directory
    save_encoder(create_encoder("resnet18_trunc"), synth_project / "enc", {"method": "adco"})
    assert run_extract(params, cohort="synth")["mine/slides_done"] == 3


def test_shards_partition_slides_deterministically() -> None:
    slides = [SlideTiles(f"s{i}", Path("x"), np.zeros((1, 2), np.int32), 256, {}) for i in (3, 1, 4, 0, 2)]
    parts = [[s.slide_id for s in shard(slides, r, 2)] for r in range(2)]
    assert parts == [["s0", "s2", "s4"], ["s1", "s3"]]


def test_real_aperio_slide_extracts_like_direct_reads(tmp_path: Path) -> None:
    """CMU-1-Small-Region.svs (OpenSlide test data, tests/data): dataset reads and features match."""
    from histcode.features.config import ExtractConfig
    from histcode.features.extract import EncoderJob, extract_slides

    svs = Path(__file__).parents[1] / "data" / "CMU-1-Small-Region.svs"
    coords = np.array([[0, 0], [512, 512], [1024, 1024], [1536, 2048], [1700, 2400]], dtype=np.int32)
    slide = SlideTiles("CMU-1", svs, coords, 512, {"tile_px": 256, "target_mpp": 0.5})
    torch.manual_seed(0)
    enc = create_encoder("resnet18_trunc").eval()
    cfg = ExtractConfig(input_px=64, batch_size=2, workers=0, threads=1, dtype="float32", bf16=False, stain=False,
                        progress=False)
    out, stats = extract_slides([slide], [EncoderJob("r", enc, "random:test", 256, tmp_path, "f0")], cfg=cfg,
                                device=torch.device("cpu"))
    assert [o.status for o in out["r"]] == ["done"] and stats["tiles"] == 5
    feats, kept, attrs = read_features(tmp_path / "CMU-1.h5")
    np.testing.assert_array_equal(kept, coords)
    with SlideReader(svs) as r:
        x = np.stack([r.read_tile(int(a), int(b), 512, 64) for a, b in coords])
    with torch.no_grad():
        ref = enc(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-5)
    assert attrs["patch_size"] == 512 and attrs["input_px"] == 64


def test_stain_normalisation_on_the_device_gives_the_workers_tiles(tmp_path: Path) -> None:
    """On a GPU the normaliser runs on the batch after the transfer (benchmarks/bench_gpu.py: the CPU workers
    were the bound); forced here on the CPU, it must give the same features as normalising in the workers."""
    from histcode.features.config import ExtractConfig
    from histcode.features.extract import EncoderJob, extract_slides
    from histcode.slides.stain import MacenkoNormalizer

    svs = Path(__file__).parents[1] / "data" / "CMU-1-Small-Region.svs"
    coords = np.array([[0, 0], [512, 512], [1024, 1024], [1536, 2048], [1700, 2400]], dtype=np.int32)
    slide = SlideTiles("CMU-1", svs, coords, 512, {"tile_px": 256, "target_mpp": 0.5})
    norm = MacenkoNormalizer(he_ref=((0.65, 0.07), (0.70, 0.99), (0.29, 0.11)), max_c_ref=(1.2, 0.8))
    torch.manual_seed(0)
    enc = create_encoder("resnet18_trunc").eval()
    cfg = ExtractConfig(input_px=64, batch_size=2, workers=1, threads=1, dtype="float32", bf16=False, stain=True,
                        progress=False)
    feats = {}
    for where in (False, True):
        out_dir = tmp_path / str(where)
        extract_slides([slide], [EncoderJob("r", enc, "random:test", 256, out_dir, "f0")], cfg=cfg,
                       device=torch.device("cpu"), normalize=norm.transform_batch, stain_on_device=where)
        feats[where] = read_features(out_dir / "CMU-1.h5")[0]
    extract_slides([slide], [EncoderJob("r", enc, "random:test", 256, tmp_path / "raw", "f0")], cfg=cfg,
                   device=torch.device("cpu"))
    np.testing.assert_array_equal(feats[True], feats[False])
    assert not np.allclose(feats[True], read_features(tmp_path / "raw" / "CMU-1.h5")[0], atol=1e-3)  # it did stain


def test_external_cohorts_skip_the_baselines_unless_asked(synth_project: Path) -> None:
    """Baselines serve the training cohort's comparisons; an external cohort embeds only the real encoders."""
    import copy

    import pytest

    from histcode.config import ConfigError

    params = copy.deepcopy(PARAMS)
    params["base"]["cohorts"]["synth"]["role"] = "external"
    params["extract"]["encoders"] = ["histomics", "random"]
    metrics = run_extract(params, cohort="synth")
    root = synth_project / "data/features/synth"
    assert metrics["histomics/slides_done"] == 3 and not (root / "random").exists()
    assert not any(k.startswith("random/") for k in metrics)
    params["extract"]["encoders"] = ["random"]
    with pytest.raises(ConfigError, match="baselines_external"):
        run_extract(params, cohort="synth")
    assert run_extract(params, cohort="synth", encoders=["random"])["random/slides_done"] == 3  # asked by name
    shutil.rmtree(root / "random")
    params["extract"].update(encoders=["histomics", "random"], baselines_external=True)
    assert run_extract(params, cohort="synth")["random/slides_done"] == 3


def test_loader_workers_are_capped_at_the_cpus_and_features_do_not_change(tmp_path: Path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """The paper profile asks for 16 loader workers (a GPU node); on a 2-core machine torch warned and 16 readers
    contended for 2 cores. Workers are capped at the CPUs the process may use, with a log line, and the features
    are the same as with no worker at all."""
    import logging

    from histcode import cpus
    from histcode.features.config import ExtractConfig
    from histcode.features.extract import EncoderJob, extract_slides

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert cpus.available_cpus() == 1 and cpus.loader_workers(0, "x") == 0 and cpus.loader_workers(1, "x") == 1
    assert cpus.torch_threads(16, "x") == 1 and cpus.torch_threads(0, "x") == 1
    svs = Path(__file__).parents[1] / "data" / "CMU-1-Small-Region.svs"
    coords = np.array([[0, 0], [512, 512], [1024, 1024], [1536, 2048]], dtype=np.int32)
    slide = SlideTiles("CMU-1", svs, coords, 512, {"tile_px": 256, "target_mpp": 0.5})
    torch.manual_seed(0)
    enc = create_encoder("resnet18_trunc").eval()
    feats = {}
    for workers in (0, 16):
        cfg = ExtractConfig(input_px=64, batch_size=2, workers=workers, threads=1, dtype="float32", bf16=False,
                            stain=False, progress=False)
        with caplog.at_level(logging.INFO, logger="histcode.cpus"):
            extract_slides([slide], [EncoderJob("r", enc, "random:test", 256, tmp_path / str(workers), "f0")],
                           cfg=cfg, device=torch.device("cpu"))
        feats[workers] = read_features(tmp_path / str(workers) / "CMU-1.h5")[0]
    assert "extract: 16 loader workers requested, 1 CPU(s) available to this process: using 1" in caplog.text
    np.testing.assert_array_equal(feats[16], feats[0])


def test_inference_relu_runs_out_of_place_with_the_same_values() -> None:
    """Extraction turns the encoder's in-place ReLUs out of place (faster for bf16 on a CPU): same embeddings."""
    from torch import nn

    from histcode.ssl.backbone import create_encoder, relu_out_of_place

    torch.manual_seed(0)
    enc = create_encoder("resnet18_trunc").eval()
    assert any(isinstance(m, nn.ReLU) and m.inplace for m in enc.modules())  # timm's ResNet: in place
    x = torch.rand(4, 3, 64, 64)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = enc(x)
        assert relu_out_of_place(enc) is enc
        after = enc(x)
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in enc.modules())
    assert torch.equal(before, after)
