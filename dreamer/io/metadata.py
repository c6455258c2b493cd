"""What every output records about how it was made (PNG text chunks, frame manifests)."""

from __future__ import annotations

import json
from typing import Any

from ..config import DreamConfig

__all__ = ["METADATA_KEY", "build_metadata", "parse_metadata", "merge_record"]

#: PNG text key holding the JSON record
METADATA_KEY = "dreamer"


def build_metadata(
    config: DreamConfig | None,
    *,
    model: str,
    weights: str,
    device: str,
    source: str,
    seed: int | None = None,
    preset: str | None = None,
    octaves_used: int | None = None,
    **extra: Any,
) -> dict[str, str]:
    """Text chunks for an output: a JSON record of every resolved setting, plus `Software`.

    `preset`: the name (or file) of the preset the settings started from, None for none.
    `octaves_used`: how many octaves the dream really ran (fewer than ``config.octaves`` when
    the image was too small for all of them; None for a render, which has no octaves).
    Read it back with `dreamer.io.images.read_metadata`, which returns the record as a dict."""
    from .. import __version__

    record: dict[str, Any] = {
        "dreamer_version": __version__,
        "model": model,
        "weights": weights,
        "device": device,
        "source": source,
        "seed": seed if seed is not None else (config.seed if config else None),
        "preset": preset,
        "octaves_used": octaves_used,
    }
    if config is not None:
        record["config"] = config.to_dict()
        # what `precision = "auto"` became on this device
        import torch

        from ..backend import resolve_precision

        record["precision_used"] = resolve_precision(config.precision, torch.device(device))
    record.update(extra)
    return {METADATA_KEY: json.dumps(record, sort_keys=True), "Software": f"dreamer {__version__}"}


def parse_metadata(text_chunks: dict[str, Any]) -> dict[str, Any]:
    """The record from an output's text chunks ({} if there is none). Also accepts what
    `read_metadata` returns (the record already parsed) and gives it back unchanged."""
    raw = text_chunks.get(METADATA_KEY)
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return dict(text_chunks) if "dreamer_version" in text_chunks else {}


def merge_record(text_chunks: dict[str, str]) -> dict[str, Any]:
    """An output's metadata as one dict: dreamer's JSON record parsed (its settings as values,
    not a JSON string), beside any other text chunks (``Software`` ...)."""
    others = {k: v for k, v in text_chunks.items() if k != METADATA_KEY}
    record = parse_metadata(text_chunks)
    if METADATA_KEY in text_chunks and not record:
        return dict(text_chunks)  # a "dreamer" chunk that is not dreamer's JSON: leave it as text
    return {**others, **record}
