"""Dreaming an existing video so the dream moves with the scene: optical flow and its
reliability (`flow`), the coherent dream loop over frames (`frames`), which frames and at what
size (`source`), background decoding/flow and writing (`prefetch`), and sessions that dream
video files with a frame store, resume and partial results (`session`). Reading videos and
copying their sound is `dreamer.io.video_in` and `dreamer.io.audio`.

>>> from dreamer.video import dream_video, dream_frames, VideoConfig
>>> dream_video("clip.mp4", "clip.dream.mp4", network=net, blend=0.8)      # paths in, path out
>>> for dreamed in dream_frames(frames, net, VideoConfig(flow="farneback")):  # uint8 (H,W,3) arrays
...     ...

Names are imported lazily (torch only when one is used).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "VideoConfig": "dreamer.video.frames",
    "VideoInput": "dreamer.video.frames",
    "DreamedFrame": "dreamer.video.frames",
    "VIDEO_DREAM": "dreamer.video.frames",
    "DEFAULT_BLEND": "dreamer.video.frames",
    "dream_frames": "dreamer.video.frames",
    "dream_streams": "dreamer.video.frames",
    "Motion": "dreamer.video.flow",
    "motion": "dreamer.video.flow",
    "warp": "dreamer.video.flow",
    "VideoJob": "dreamer.video.session",
    "VideoProgress": "dreamer.video.session",
    "VideoResult": "dreamer.video.session",
    "VideoInterrupted": "dreamer.video.session",
    "KeptVideo": "dreamer.video.session",
    "dream_video": "dreamer.video.session",
    "dream_videos": "dreamer.video.session",
    "parse_time": "dreamer.video.source",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dreamer.video' has no attribute {name!r}")
