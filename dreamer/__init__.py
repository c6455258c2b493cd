"""dreamer: DeepDream and feature visualisation with a pretrained GoogLeNet.

Public API: `dream` (either loop, as the config says), `noise` (a start image), `load_model`,
`Network`, `prepare` (a network made ready for many dreams: `PreparedNetwork`), `DreamConfig`,
the objectives (`layer_l2`, `channel`, `class_logit`, `neuron`, `guide`, `diversity`,
`Objective`), the dream controls (`Controls`, `Guide`, `Diversity`: see `dreamer.steer`),
`plan_octaves`, `resolve_device` and `set_threads`; videos: `dream_video`, `dream_videos`,
`dream_frames`, `VideoConfig` (see `dreamer.video`).
Heavy modules (torch, torchvision) are imported only when these are first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "dream": "dreamer.api",
    "noise": "dreamer.api",
    "prepare": "dreamer.backend",
    "PreparedNetwork": "dreamer.backend",
    "DreamConfig": "dreamer.config",
    "LayerTarget": "dreamer.config",
    "ClassTarget": "dreamer.config",
    "load_model": "dreamer.models",
    "Network": "dreamer.models",
    "list_models": "dreamer.models",
    "layer_l2": "dreamer.objectives",
    "channel": "dreamer.objectives",
    "class_logit": "dreamer.objectives",
    "neuron": "dreamer.objectives",
    "guide": "dreamer.objectives",
    "diversity": "dreamer.objectives",
    "Objective": "dreamer.objectives",
    "Controls": "dreamer.steer",
    "Guide": "dreamer.steer",
    "Diversity": "dreamer.steer",
    "plan_octaves": "dreamer.loops.deepdream",
    "resolve_device": "dreamer.devices",
    "set_threads": "dreamer.devices",
    "dream_video": "dreamer.video.session",
    "dream_videos": "dreamer.video.session",
    "dream_frames": "dreamer.video.frames",
    "VideoConfig": "dreamer.video.frames",
    "make_zoom_video": "dreamer.zoom.session",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    # lazy so that `import dreamer` (and `dreamer --help`) stays instant
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dreamer' has no attribute {name!r}")
