"""Which encoder produced a feature set, as a registry reference: ``histcode-encoder/<version>`` for a
registered encoder, ``baseline/<name>`` for the random/ImageNet baselines, ``unknown`` otherwise.

Read from the features' own ``encoder_uri`` attribute (written by extraction), so a MIL model trained with
``mil.encoder=random`` is never credited to the AdCo encoder, whatever sits in data/models/encoder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from histcode.registry.names import ENCODER

log = logging.getLogger(__name__)

VERSION_KEYS = ("registered_version", "model_version", "registry_version", "version")
BASELINE = "baseline"


def encoder_dir_version(encoder_dir: Path) -> str:
    """``histcode-encoder/<version>`` of the encoder saved in a local directory, else ``unknown``.

    Its JSON metadata may name the version; otherwise the registry is asked which version was logged by the
    metadata's training ``run_id`` (the pretrain stage writes it).
    """
    for meta in sorted(encoder_dir.glob("*.json")) if encoder_dir.is_dir() else []:
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        name = data.get("registered_name") or ENCODER
        for key in VERSION_KEYS:
            if data.get(key) not in (None, ""):
                return f"{name}/{data[key]}"
        if data.get("run_id"):
            try:
                from histcode import tracking

                found = tracking.client().search_model_versions(f"name='{name}' and run_id='{data['run_id']}'")
            except Exception as exc:  # registry unreachable: the tag says unknown, training goes on
                log.warning("encoder version lookup failed: %s", exc)
                found = []
            if found:
                return f"{name}/{max(int(v.version) for v in found)}"
    return "unknown"


def encoder_of_uri(uri: str) -> str:
    """Registry reference of the encoder behind a features file's ``encoder_uri`` attribute."""
    from histcode.registry.models import get_version, parse_model_uri

    ref = parse_model_uri(uri)
    if ref is not None:
        if ref.alias is not None:
            return f"{ref.name}/{get_version(ref.name, ref.alias).version}"
        return f"{ref.name}/{ref.version}" if ref.version is not None else ref.name
    head = uri.split(":", 1)[0]
    if head in ("random", "imagenet"):
        return f"{BASELINE}/{head}"
    if uri and Path(uri).is_dir():
        return encoder_dir_version(Path(uri))
    return "unknown"


def features_lineage(feature_files: list[Path]) -> dict[str, str]:
    """{encoder_version, encoder_uri, encoder_fingerprint} of a feature set (its first readable file)."""
    from histcode.io.features import FeaturesError, read_attrs

    for path in feature_files:
        try:
            attrs = read_attrs(path)
        except FeaturesError:
            continue
        uri = str(attrs.get("encoder_uri", ""))
        return {"encoder_version": encoder_of_uri(uri), "encoder_uri": uri,
                "encoder_fingerprint": str(attrs.get("encoder_fingerprint", ""))}
    return {"encoder_version": "unknown", "encoder_uri": "", "encoder_fingerprint": ""}
