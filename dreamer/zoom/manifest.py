"""The manifest of a zoom video's frame store: what made its frames, so a resume can check.

A manifest is plain JSON data (written by `dreamer.io.video.FrameStore.write_manifest`)::

    {"format": "dreamer zoom 1", "software": "dreamer 0.1.0",
     "source": "photo.jpg", "size": [H, W], "seed": 0, "video": 0,
     "model": "googlenet", "weights": "pretrained",
     "zoom": {...ZoomConfig.to_dict() without frames...}, "frames": 100, "fps": 30.0,
     "controls": {...Controls.to_dict(): guides, mask, keep_colors...},
     "partial": {"name": "out.partial.mp4", "size": ..., "mtime_ns": ...}}   # once one is written

``format`` is dreamer's signature: a folder whose manifest lacks it is not dreamer's.
The settings that decide the pixels are compared on resume (`resume_problem`); ``fps`` may
change (it changes no frame) and ``frames`` may grow unless a ramp spreads over the length.
The controls are compared as given (guide and mask files by name); a manifest written before
they were recorded reads as no controls.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["FORMAT", "COMPARED", "build_manifest", "is_zoom_manifest", "resume_problem", "differences"]

#: The signature and version of zoom manifests.
FORMAT = "dreamer zoom 1"
#: The keys whose values decide the frames: a resume must match them (frames: see resume_problem).
COMPARED = ("source", "size", "seed", "video", "model", "weights", "zoom")


def build_manifest(*, source: str, size: tuple[int, int], seed: int, video: int, model: str, weights: str,
                   zoom: dict[str, Any], fps: float, controls: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of one video, as it will read back from JSON (tuples become lists).
    `zoom` is `ZoomConfig.to_dict()`; its frame count is stored on its own as ``frames``.
    `controls` is `dreamer.steer.Controls.to_dict()` (None: no controls)."""
    from .. import __version__

    zoom = dict(zoom)
    frames = zoom.pop("frames")
    data = {
        "format": FORMAT,
        "software": f"dreamer {__version__}",
        "source": source,
        "size": [int(size[0]), int(size[1])],
        "seed": seed,
        "video": video,
        "model": model,
        "weights": weights,
        "zoom": zoom,
        "frames": frames,
        "fps": fps,
        "controls": dict(controls or {}),
    }
    return json.loads(json.dumps(data))


def is_zoom_manifest(data: Any) -> bool:
    """Whether `data` is a zoom manifest dreamer wrote (any version of this format)."""
    return isinstance(data, dict) and data.get("format") == FORMAT


def _describe(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """'path: was X, now Y' for each leaf where two JSON values differ (dreams[0].steps ...)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out.extend(differences(old.get(key), new.get(key), f"{path}.{key}" if path else key))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and any(
        isinstance(v, (dict, list)) for v in old + new
    ):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    return [f"{path}: was {_describe(old)}, now {_describe(new)}"]


def resume_problem(old: dict[str, Any], new: dict[str, Any], done: int, ramped: bool) -> str | None:
    """Why frames made with manifest `old` cannot be continued with manifest `new`
    (`done` frames exist; `ramped`: the new zoom/rotate ramp over the length). None: they can."""
    diffs: list[str] = []
    for key in COMPARED:
        # the zoom settings are named by their own keys (zoom, rotate ...), the rest by their name
        prefix = "" if key == "zoom" and isinstance(old.get(key), dict) else key
        diffs.extend(differences(old.get(key), new.get(key), prefix))
    diffs.extend(differences(old.get("controls") or {}, new.get("controls") or {}, "controls"))
    old_frames, new_frames = old.get("frames"), new["frames"]
    if old_frames != new_frames:
        if isinstance(old_frames, bool) or not isinstance(old_frames, int) or new_frames < old_frames or new_frames < done:
            diffs.append(f"frames: was {old_frames}, now {new_frames} (a video can be made longer, not shorter)")
        elif ramped:
            diffs.append(
                f"frames: was {old_frames}, now {new_frames} (with a START:END ramp every frame depends on "
                "the length; a longer video needs --force)"
            )
    return "; ".join(diffs) or None
