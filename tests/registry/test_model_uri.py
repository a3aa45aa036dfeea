"""The one parser of models:/ URIs (registry.models.parse_model_uri) that every loader goes through."""

from __future__ import annotations

from pathlib import Path

from histcode.registry import ModelRef, parse_model_uri


def test_registry_uris_are_parsed_and_paths_are_not() -> None:
    assert parse_model_uri("models:/histcode-mil@champion") == ModelRef("histcode-mil", alias="champion")
    assert parse_model_uri("models:/histcode-encoder/3") == ModelRef("histcode-encoder", version="3")
    assert parse_model_uri("models:/histcode-de") == ModelRef("histcode-de")
    assert parse_model_uri(Path("data/models/mil")) is None
    assert parse_model_uri("models:/a/b/c") is None and parse_model_uri("models:/x/latest") is None
