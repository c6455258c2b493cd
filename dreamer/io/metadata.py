"""What every output records about how it was made (PNG text chunks, frame manifests)."""

from __future__ import annotations

import json
from typing import Any

from ..config import DreamConfig

__all__ = ["METADATA_KEY", "build_metadata", "parse_metadata"]

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
    **extra: Any,
) -> dict[str, str]:
    """Text chunks for an output: a JSON record of every resolved setting, plus `Software`."""
    from .. import __version__

    record: dict[str, Any] = {
        "dreamer_version": __version__,
        "model": model,
        "weights": weights,
        "device": device,
        "source": source,
        "seed": seed if seed is not None else (config.seed if config else None),
    }
    if config is not None:
        record["config"] = config.to_dict()
        # what `precision = "auto"` became on this device
        import torch

        from ..backend import resolve_precision

        record["precision_used"] = resolve_precision(config.precision, torch.device(device))
    record.update(extra)
    return {METADATA_KEY: json.dumps(record, sort_keys=True), "Software": f"dreamer {__version__}"}


def parse_metadata(text_chunks: dict[str, str]) -> dict[str, Any]:
    """The JSON record from an output's text chunks ({} if there is none)."""
    raw = text_chunks.get(METADATA_KEY)
    return json.loads(raw) if raw else {}
