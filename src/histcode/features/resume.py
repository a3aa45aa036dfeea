"""Is a slide's (or a whole cohort's) extraction already done for the current encoders, settings and tiles?

Decided from the files alone, without torch or MLflow. Every features file records what made it:
``encoder_fingerprint`` (the weights, and the subsample of a baseline), ``extract_settings`` (the settings that
change the numbers: input size, dtype, bf16, the stain reference), and the tiles it embedded
(``tile_config_digest`` of the coords file, ``n_tiles_slide``). A resumed run skips a slide whose file records
the current values (``finished``).

The weights' fingerprint needs the model loaded (torch), so each encoder folder also keeps ``encoder_key.json``:
a cheap key of the encoder's sources (content digests of its files, seed, subsample, library versions) next to
the fingerprint the last full run computed from them. While the key matches, ``complete_metrics`` knows the
fingerprint without torch; when every slide is finished it returns what a full run would report (every slide
skipped) and the stage returns at once, opening no MLflow run. Anything it cannot key cheaply (registry URIs,
imported TRIDENT/CLAM folders, a foundation model found in the Hugging Face cache) leaves the decision to the
full run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from histcode.features import throughput
from histcode.features.config import ExtractConfig
from histcode.io.features import FeaturesError, read_attrs
from histcode.paths import Paths

log = logging.getLogger(__name__)

KEY_FILE = "encoder_key.json"
UNAVAILABLE = "unavailable"  # source_key of an optional baseline that a full run would skip (no weights)
_VERSIONED = ("torch", "torchvision", "timm")  # a random init or a backbone definition may change with these


def default_source(name: str, paths: Paths) -> str:
    """Where a trained encoder lives unless ``extract.sources`` names it: ``data/models/encoder[_<name>]``."""
    return str(paths.models("encoder" if name == "adco" else f"encoder_{name}"))


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 of a file (first 16 hex): an encoder's weights or sources, a stain reference (no torch here)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


PROVENANCE_KEYS = ("run_id",)  # an encoder.json's record of the MLflow run that trained it: not its content


def source_digest(path: Path) -> str:
    """``file_digest``, except that an ``encoder.json`` is digested without ``PROVENANCE_KEYS``: the same
    weights trained again (or pretrained from scratch on a fresh clone) get a new run id, and keying on it gave
    the features folder a new ``encoder_key.json``, so DVC reran every stage after extraction for nothing."""
    if path.name == "encoder.json":
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            return file_digest(path)
        if isinstance(meta, dict):
            return _digest({k: v for k, v in meta.items() if k not in PROVENANCE_KEYS})
    return file_digest(path)


def settings_digest(cfg: ExtractConfig, input_px: int, stain_reference: Path | None) -> str:
    """The settings that change the features of a given encoder on given tiles (not speed knobs); bf16 as
    resolved on this machine's default device (``histcode.precision``)."""
    from histcode.precision import resolve_bf16

    stain = file_digest(stain_reference) if cfg.stain and stain_reference is not None else "none"
    bf16 = resolve_bf16(cfg.bf16)
    return _digest({"input_px": input_px or cfg.input_px, "dtype": cfg.dtype, "bf16": bf16, "stain": stain})


def _tile_digest(coords_attrs: Mapping[str, Any]) -> Any:
    value = coords_attrs.get("tile_config_digest")
    return -1 if value is None else value  # features attrs store a missing value as -1


def expected_attrs(identity: str, settings: str, coords_attrs: Mapping[str, Any], n_tiles: int) -> dict[str, Any]:
    """What the features file of a slide with these coords must record to count as finished."""
    return {"encoder_fingerprint": identity, "extract_settings": settings,
            "tile_config_digest": _tile_digest(coords_attrs), "n_tiles_slide": int(n_tiles)}


def finished(path: Path, expected: Mapping[str, Any]) -> dict[str, Any] | None:
    """The attrs of a complete features file at ``path`` recording ``expected``, else None (resume redoes it).

    Files only appear once complete (atomic writes), so an existing readable file with these values is done."""
    if not path.exists():
        return None
    try:
        attrs = read_attrs(path)
    except FeaturesError:
        return None
    return attrs if all(str(attrs.get(k, "")) == str(v) for k, v in expected.items()) else None


def source_key(name: str, cfg: ExtractConfig, paths: Paths, *, seed: int) -> str | None:
    """A cheap key that determines encoder ``name``'s fingerprint (no model loaded); ``UNAVAILABLE`` for an
    optional baseline a full run would skip; None when only loading the model can tell."""
    versions = {p: _version(p) for p in _VERSIONED}
    common = {"name": name, "seed": seed, "baseline_max_tiles": cfg.baseline_max_tiles, "versions": versions}
    source = cfg.sources.get(name)
    if source is None and name in ("adco", "simclr"):
        source = default_source(name, paths)
    if source is not None:
        files = _source_files(source)
        return None if files is None else _digest({**common, "source": {f.name: source_digest(f) for f in files}})
    if name == "random":  # seeded init of the AdCo backbone: its encoder.json names the backbone
        meta = Path(cfg.sources.get("adco", default_source("adco", paths))) / "encoder.json"
        return _digest({**common, "backbone": cfg.backbone,
                        "adco_meta": source_digest(meta) if meta.is_file() else None})
    if name == "imagenet":
        weights = cfg.imagenet_weights
        if weights is None or not Path(weights).is_file():
            return UNAVAILABLE
        return _digest({**common, "backbone": cfg.imagenet_backbone, "weights": file_digest(Path(weights))})
    return None


def _source_files(source: str) -> list[Path] | None:
    """The files an encoder is loaded from: a weight file, or an encoder directory (``encoder.json`` + weights);
    None for what only a full run resolves (``models:/`` URIs, feature folders, foundation-model folders)."""
    p = Path(source)
    if source.startswith("models:/"):
        return None
    if p.is_file():
        return [p]
    if p.is_dir() and (p / "encoder.json").is_file():
        return sorted(f for f in p.iterdir() if f.is_file())
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def write_key(out_dir: Path, key: str, identity: str, input_px: int) -> None:
    """Record that encoder sources with ``key`` have fingerprint ``identity`` and want ``input_px`` tiles (0:
    ``extract.input_px``); written by every full run."""
    from histcode.atomic import write_json

    write_json(out_dir / KEY_FILE, {"key": key, "encoder_fingerprint": identity, "input_px": int(input_px)})


def known_identity(out_dir: Path, key: str) -> tuple[str, int] | None:
    """(fingerprint, input px) a full run recorded for sources with ``key``, else None."""
    try:
        recorded = json.loads((out_dir / KEY_FILE).read_text())
        if recorded.get("key") == key:
            return str(recorded["encoder_fingerprint"]), int(recorded["input_px"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def same_report(recorded: Mapping[str, Any], metrics: Mapping[str, Any], names: list[str]) -> bool:
    """Whether a stage's recorded metrics describe these outputs: the same keys (encoders), the same cohort size
    and, per encoder, as many slides done, skipped or partial as are finished now (else they are rewritten)."""
    if set(recorded) != set(metrics) or recorded.get("n_slides") != metrics.get("n_slides"):
        return False
    return all(sum(int(recorded.get(f"{n}/slides_{s}", 0)) for s in ("done", "skipped", "partial"))
               == metrics[f"{n}/slides_skipped"] for n in names if f"{n}/slides_skipped" in metrics)


def complete_metrics(cohort: str, names: list[str], cfg: ExtractConfig, paths: Paths, *, seed: int,
                     default_mpp: float | None = None) -> dict[str, Any] | None:
    """The metrics a full run of ``cohort`` would report when every tiled slide already has finished features of
    every encoder in ``names`` (all skipped), else None. Single-process runs only (a ``torchrun`` shard decides
    with its ranks)."""
    from histcode.slides.cohort_tiles import collect_slides

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    slides, coord_failures = collect_slides(cohort, paths=paths, default_mpp=default_mpp)
    if not slides or (cfg.stain and not paths.stain_reference.is_file()):
        return None  # the full run says what is wrong
    metrics: dict[str, Any] = {"n_slides": len(slides) + len(coord_failures), "world_size": 1}
    counts: dict[str, Any] = {}
    identities: dict[str, str] = {}
    for name in names:
        out_dir = paths.features(cohort, name)
        key = source_key(name, cfg, paths, seed=seed)
        if key == UNAVAILABLE:
            metrics[f"{name}/skipped"] = 1
            continue
        known = known_identity(out_dir, key) if key is not None else None
        if known is None or not (out_dir / "failures.csv").is_file():
            return None
        identity, input_px = known
        identities[name] = identity
        settings = settings_digest(cfg, input_px, paths.stain_reference)
        dims = set()
        for s in slides:
            attrs = finished(out_dir / f"{s.slide_id}.h5", expected_attrs(identity, settings, s.attrs, s.n))
            if attrs is None:
                return None
            dims.add(int(attrs["dim"]))
        if len(dims) != 1:
            return None
        counts.update({f"{name}/slides_done": 0, f"{name}/slides_skipped": len(slides),
                       f"{name}/slides_partial": 0, f"{name}/slides_failed": len(coord_failures),
                       f"{name}/dim": dims.pop()})
    metrics.update(**throughput.speed_metrics(cohort, identities, {"tiles": 0.0}, 0.0,
                                              root=throughput.record_root(paths)), **counts)
    return metrics
