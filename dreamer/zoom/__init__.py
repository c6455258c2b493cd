"""Zoom videos as a library: the feedback loop (`feedback`: zoom, rotate, shift, dream), sessions
that make and resume them in files (`session`), their manifests (`manifest`), and jobs files (`jobs`).

>>> from dreamer.zoom import ZoomConfig, make_zoom_video
>>> make_zoom_video("photo.jpg", "photo.mp4", network=net, config=ZoomConfig(frames=120))

Names are imported lazily (torch only when one is used).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ZoomConfig": "dreamer.zoom.feedback",
    "ZoomVideo": "dreamer.zoom.feedback",
    "ZoomFrame": "dreamer.zoom.feedback",
    "zoom_frames": "dreamer.zoom.feedback",
    "frame_seed": "dreamer.zoom.feedback",
    "LIGHT_DREAM": "dreamer.zoom.feedback",
    "ZoomJob": "dreamer.zoom.session",
    "ZoomSession": "dreamer.zoom.session",
    "ZoomEvent": "dreamer.zoom.session",
    "VideoState": "dreamer.zoom.session",
    "make_zoom_video": "dreamer.zoom.session",
    "parse_jobs": "dreamer.zoom.jobs",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dreamer.zoom' has no attribute {name!r}")
