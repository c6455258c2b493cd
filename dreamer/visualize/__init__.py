"""Seeing inside the network: activation maps, filters, top images, occlusion, deconvnet /
guided backpropagation, and channel contact sheets.

Every function here returns tensors (images are float32 RGB in [0,1], (3,H,W) or
(N,3,H,W), on the CPU) and never writes an output; the CLI (`dreamer.cli.visualize`)
saves them. Only `top_images.scan_images` touches the file system, for its activation cache,
and only when given a cache file. Submodules are imported lazily.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "activation_maps": "activations",
    "strongest_channels": "activations",
    "activation_tiles": "activations",
    "activation_sheet": "activations",
    "find_conv": "filters",
    "filter_tiles": "filters",
    "filters_sheet": "filters",
    "list_images": "top_images",
    "scan_images": "top_images",
    "top_units": "top_images",
    "top_images_sheet": "top_images",
    "cache_file_for": "top_images",
    "occlusion_map": "occlusion",
    "occlusion_overlay": "occlusion",
    "relu_rule": "deconv",
    "unit_gradient": "deconv",
    "reconstruct": "deconv",
    "grow_channels": "channels",
    "channels_sheet": "channels",
    "make_grid": "grid",
    "colormap": "grid",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'dreamer.visualize' has no attribute {name!r}")
