"""``histcode extract`` against CLAM's own ``extract_features_fp.py``, side by side on the same tiles and weights.

Both embed the same slides' tiles (the project's coords ``.h5`` files, which CLAM reads as its ``patches/``)
with the paper's encoder, a ResNet50 cut after layer3 (1024-d), from one timm state dict: a seeded random
initialisation, because ImageNet weights cannot be downloaded here (CLAM loads it through an offline Hugging
Face cache, HistCode through ``extract.imagenet_weights``). Speed does not depend on the weights' values. CLAM runs
from its own checkout and venv (``--clam-dir``, ``--clam-python``; not a project dependency) as it does out of the
box on a CPU (batch 256, float32, tiles read in the main process); HistCode runs ``histcode extract`` with the
project's ``extract`` settings except ``input_px: 224`` (CLAM's size), no stain normalisation (CLAM has none) and
all tiles. The two whole processes run in turn, ``--pairs`` times (A B A B); we report median wall times, their
ratio, and how far the features agree: per tile, the cosine of HistCode's and CLAM's feature vectors after
removing the mean feature (beside it, the same cosine between neighbouring tiles of CLAM's, which says what
"different" looks like with these weights; tiles that run past the slide's edge, black in CLAM and white in
HistCode, are counted apart). One more pair times the like-for-like variants: CLAM at HistCode's
batch size, and HistCode in float32 (``extract.bf16: false``). Usage:

    python benchmarks/bench_extract_vs_clam.py --clam-dir ../peer/CLAM --clam-python ../peer/clam-venv/bin/python \\
        --work /tmp/extract_vs_clam --slides 2 --pairs 3 --out benchmarks/results/bench_extract_vs_clam.json

``--slide-file S --coords-file C`` runs one slide of your own instead (a real SVS with CLAM's coords, say).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from histcode.atomic import write_json
from histcode.config import base, load_params
from histcode.io.coords import read_coords
from histcode.io.features import read_features, read_foreign_features
from histcode.paths import Paths
from histcode.precision import resolve_bf16

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mil_vs_clam import timed as timed_process

TIMM_NAME = "resnet50.tv_in1k"  # CLAM's resnet50_trunc (models/timm_wrapper.py) and HistCode's resnet50_trunc
HF_REVISION = "0" * 40


def prepare(args: argparse.Namespace) -> dict[str, object]:
    """CLAM's layout (patches/, slides/, a slide list) and a HistCode workspace on the same slides and weights."""
    import timm
    import torch
    from safetensors.torch import save_file

    raw = load_params(args.params)
    bcfg = base(raw)
    cohort, paths = bcfg.train_cohort, Paths.from_base(bcfg)  # the project's data, relative to the working directory
    if args.slide_file:  # one slide of the user's own (a real SVS, say) with its coords file, ours or CLAM's
        slide = Path(args.slide_file).resolve()
        ext = slide.suffix
        manifest = pd.DataFrame([{"slide_id": slide.stem, "path": str(slide), "patient_id": slide.stem,
                                  "cohort": cohort, "sample_type": "Primary Tumor", "label": 1, "mpp": None}])
        coords_of = {slide.stem: Path(args.coords_file)}
    else:
        ext = args.ext
        manifest = pd.read_csv(paths.slides_csv(cohort))
        manifest = manifest[manifest["path"].str.endswith(args.ext)].sort_values("slide_id").head(args.slides)
        if len(manifest) < args.slides:
            raise SystemExit(f"{args.params}: only {len(manifest)} {args.ext} slides in cohort {cohort}; "
                             "run `make demo` first")
        coords_of = {sid: paths.coords_h5(cohort, sid) for sid in manifest["slide_id"]}
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    clam, ws = work / "clam", work / "ws"
    for d in (clam / "patches", clam / "slides", ws / "data" / "manifests" / cohort, ws / "data" / "tiles" / cohort):
        d.mkdir(parents=True)
    manifest = manifest.assign(path=[str(Path(p).resolve()) for p in manifest["path"]])
    n_tiles = 0
    for row in manifest.itertuples(index=False):
        coords = coords_of[row.slide_id]
        shutil.copy(coords, clam / "patches" / f"{row.slide_id}.h5")
        shutil.copy(coords, ws / "data" / "tiles" / cohort / f"{row.slide_id}.h5")
        (clam / "slides" / f"{row.slide_id}{ext}").symlink_to(row.path)
        n_tiles += len(read_coords(coords)[0])
    manifest[["slide_id"]].to_csv(clam / "list.csv", index=False)
    manifest.to_csv(ws / "data" / "manifests" / cohort / "slides.csv", index=False)

    torch.manual_seed(args.seed)
    state = {k: v.contiguous() for k, v in timm.create_model(TIMM_NAME, pretrained=False).state_dict().items()}
    weights = work / "resnet50_random.safetensors"
    save_file(state, str(weights))
    snap = work / "hf" / "hub" / f"models--timm--{TIMM_NAME}"
    (snap / "snapshots" / HF_REVISION).mkdir(parents=True)
    (snap / "refs").mkdir()
    (snap / "refs" / "main").write_text(HF_REVISION)
    shutil.copy(weights, snap / "snapshots" / HF_REVISION / "model.safetensors")

    for name, bf16 in (("params.yaml", raw["extract"].get("bf16", "auto")), ("params_fp32.yaml", False)):
        p = yaml.safe_load(Path(args.params).read_text())
        p["base"].update(data_dir=str(ws / "data"), reports_dir=str(ws / "reports"))
        p["extract"].update(encoders=["imagenet"], imagenet_backbone="resnet50_trunc", imagenet_weights=str(weights),
                            input_px=224, baseline_max_tiles=0, stain=False, progress=False, bf16=bf16)
        (ws / name).write_text(yaml.safe_dump(p, sort_keys=False))
    return {"cohort": cohort, "slides": dict(zip(manifest["slide_id"], manifest["path"], strict=True)),
            "tiles": n_tiles, "work": work, "ext": ext,
            "batch_size": int(raw["extract"].get("batch_size", 64))}


def clam_cmd(args: argparse.Namespace, work: Path, ext: str, batch: int) -> list[str]:
    return [args.clam_python, "extract_features_fp.py", "--data_h5_dir", str(work / "clam"),
            "--data_slide_dir", str(work / "clam" / "slides"), "--slide_ext", ext,
            "--csv_path", str(work / "clam" / "list.csv"), "--feat_dir", str(work / "clam" / "feats"),
            "--model_name", "resnet50_trunc", "--batch_size", str(batch), "--target_patch_size", "224"]


def ours_cmd(cohort: str, work: Path, params: str) -> list[str]:
    histcode = Path(sys.executable).with_name("histcode")
    return [str(histcode), "extract", "--cohort", cohort, "--encoder", "imagenet",
            "--params", str(work / "ws" / params), "--no-progress"]


def timed(cmd: list[str], cwd: Path, env: dict[str, str], fresh: Path) -> float:
    """Wall seconds of one whole process, its outputs removed first (neither side skips finished slides)."""
    shutil.rmtree(fresh, ignore_errors=True)
    return timed_process(cmd, cwd, env)


def agreement(work: Path, cohort: str, slides: dict[str, str]) -> dict[str, float]:
    """Per tile: cosine of HistCode's and CLAM's features after removing CLAM's mean feature; beside it the same
    cosine between CLAM's features of neighbouring tiles (how alike two different tiles look). Tiles that run past
    the slide's edge are scored apart: OpenSlide returns transparent pixels there, which CLAM's ``convert('RGB')``
    turns black and HistCode fills as glass (white)."""
    import openslide

    ours, theirs, past_edge = [], [], []
    for sid, path in slides.items():
        feats, coords, attrs = read_features(work / "ws" / "data" / "features" / cohort / "imagenet" / f"{sid}.h5")
        clam_feats, clam_coords, _ = read_foreign_features(work / "clam" / "feats" / "h5_files" / f"{sid}.h5")
        where = {tuple(c): i for i, c in enumerate(coords.tolist())}
        if len(where) != len(clam_coords) or any(tuple(c) not in where for c in clam_coords.tolist()):
            raise SystemExit(f"{sid}: HistCode and CLAM embedded different tiles")
        ours.append(feats.astype(np.float64)[[where[tuple(c)] for c in clam_coords.tolist()]])
        theirs.append(clam_feats.astype(np.float64))
        with openslide.OpenSlide(path) as slide:
            width, height = slide.dimensions
        size = int(attrs.get("patch_size_level0") or attrs["patch_size"])
        past_edge.append((clam_coords[:, 0] + size > width) | (clam_coords[:, 1] + size > height))
    a, b, edge = np.vstack(ours), np.vstack(theirs), np.concatenate(past_edge)
    a, b = a - b.mean(0), b - b.mean(0)

    def cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))

    same, other = cos(a, b), cos(b, np.roll(b, 1, axis=0))
    inside = same[~edge]
    return {"tiles": len(a), "tiles_past_the_edge": int(edge.sum()),
            "cosine_median": float(np.median(inside)), "cosine_min": float(inside.min()),
            "cosine_past_the_edge_median": float(np.median(same[edge])) if edge.any() else None,
            "cosine_neighbour_tiles_median": float(np.median(other)),
            "relative_l2_median": float(np.median(np.linalg.norm(a - b, axis=1)[~edge]
                                                  / np.linalg.norm(b, axis=1)[~edge]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clam-dir", required=True)
    ap.add_argument("--clam-python", required=True)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--work", default="/tmp/extract_vs_clam")
    ap.add_argument("--slides", type=int, default=2)
    ap.add_argument("--ext", default=".tiff", help="CLAM takes one slide extension per run")
    ap.add_argument("--slide-file", default=None, help="one slide of your own (e.g. a real SVS) instead of the demo's")
    ap.add_argument("--coords-file", default=None, help="with --slide-file: its coords .h5 (HistCode's or CLAM's)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/bench_extract_vs_clam.json")
    args = ap.parse_args()
    if bool(args.slide_file) != bool(args.coords_file):
        ap.error("--slide-file and --coords-file go together")
    setup = prepare(args)
    work, cohort = Path(setup["work"]), str(setup["cohort"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    clam_env = {**env, "HF_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1"}
    clam_dir, ws = Path(args.clam_dir).resolve(), work / "ws"
    clam_out, ours_out = work / "clam" / "feats", ws / "data" / "features"
    runs: dict[str, list[float]] = {"clam": [], "histcode": []}
    for i in range(args.pairs):
        runs["clam"].append(timed(clam_cmd(args, work, str(setup["ext"]), 256), clam_dir, clam_env, clam_out))
        runs["histcode"].append(timed(ours_cmd(cohort, work, "params.yaml"), ws, env, ours_out))
        print(f"pair {i + 1}/{args.pairs}: CLAM {runs['clam'][-1]:.1f} s, histcode {runs['histcode'][-1]:.1f} s",
              flush=True)
    agree = agreement(work, cohort, dict(setup["slides"]))  # the last pair's outputs
    batch = int(setup["batch_size"])
    like = {f"clam_batch{batch}_s": timed(clam_cmd(args, work, str(setup["ext"]), batch), clam_dir, clam_env, clam_out),
            "histcode_fp32_s": timed(ours_cmd(cohort, work, "params_fp32.yaml"), ws, env, ours_out)}
    agree_fp32 = agreement(work, cohort, dict(setup["slides"]))
    n = int(setup["tiles"])
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "slides": len(setup["slides"]), "tiles": n, "encoder": "resnet50_trunc (timm resnet50 to layer3, 1024-d)",
        "weights": f"seeded random init (seed {args.seed}), one file for both", "input_px": 224,
        "histcode_bf16": resolve_bf16(load_params(args.params)["extract"].get("bf16", "auto"), "cpu"),
        "pairs": args.pairs, "wall_s": runs, "median_wall_s": med,
        "tiles_per_s": {k: n / v for k, v in med.items()},
        "speedup_histcode_vs_clam": med["clam"] / med["histcode"],
        "pairwise_ratios": [c / h for c, h in zip(runs["clam"], runs["histcode"], strict=True)],
        "like_for_like_wall_s": like,
        "like_for_like_speedup": like[f"clam_batch{batch}_s"] / like["histcode_fp32_s"],
        "feature_agreement": agree, "feature_agreement_fp32": agree_fp32,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
