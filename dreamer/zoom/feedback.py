"""Zoom videos: dream a frame, zoom (rotate, shift) into it, dream again on the result.

Pure engine: never prints, never touches files. `zoom_frames` yields each finished frame as
a uint8 (H, W, 3) array; the caller writes it (see `dreamer.io.video.FrameStore`).

The recurrence, for a video of `frames` frames::

    frame 0     = the source, quantised to uint8
    frame k + 1 = dream(feedback(frame k))          for k = 0 .. frames - 2

`feedback` zooms into the centre (and rotates, shifts) with bilinear interpolation on the
network's device; `dream` is `engine.dream` with the frame's own `DreamConfig` and seed.
Every frame is quantised to uint8 *before* it is fed back, so the state carried from one
frame to the next is exactly the frame that was saved: a run resumed from the saved PNG
continues bit for bit like an uninterrupted one (on the same device and software).

Schedules are data on `ZoomConfig`: `zoom` and `rotate` ramp linearly from a start value
(the step that makes frame 1) to an end value (the step that makes the last frame), and
`dreams` cycles through several `DreamConfig`s (layers, presets), `cycle_every` frames each.

Each frame's random stream (the jitter of its dream steps) is seeded by
`frame_seed(seed, video, frame)`, so it depends neither on which frames ran earlier in the
process (resume) nor on which other videos share the batch (batching).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import transforms as T
from ..config import DreamConfig
from ..errors import ConfigError

__all__ = [
    "LIGHT_DREAM",
    "MAX_ZOOM",
    "MAX_ROTATE",
    "ZoomConfig",
    "ZoomVideo",
    "ZoomFrame",
    "zoom_frames",
    "frame_seed",
    "parse_ramp",
    "parse_shift",
    "quantize",
    "frame_to_tensor",
]

#: The per-frame dream when nothing else is asked for: light, because it runs on every frame.
LIGHT_DREAM = DreamConfig(octaves=1, steps=5)
#: Zoom factors above this per frame are refused as absurd (the picture would double each frame).
MAX_ZOOM = 2.0
#: Rotations beyond this many degrees per frame are refused.
MAX_ROTATE = 180.0


def _number(name: str, value: Any, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(name, value, allowed)
    return float(value)


def _pair(name: str, value: Any, allowed: str) -> tuple[float, float]:
    """A (start, end) ramp from a number (constant) or a pair of numbers."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ConfigError(name, value, allowed)
    return (_number(name, value[0], allowed), _number(name, value[1], allowed))


@dataclass(frozen=True)
class ZoomConfig:
    """How a zoom video is made, frame by frame (plain data; validated on creation).

    - ``frames``: frames in the video, counting frame 0 (the source itself); ``frames - 1`` dreams.
    - ``dreams``: the per-frame dream settings; several are cycled, ``cycle_every`` frames each,
      starting with ``dreams[0]`` for frames 1 .. cycle_every. Their ``seed`` field is not used
      (each frame has its own, see `frame_seed`) and is stored as 0.
    - ``zoom``: (start, end) zoom factor per frame, > 0 and <= `MAX_ZOOM` (> 1 zooms in, < 1 out),
      ramped linearly: frame 1 is made with ``start``, the last frame with ``end``.
    - ``rotate``: (start, end) degrees per frame, counter-clockwise, ramped the same way.
    - ``shift``: (dy, dx) pixels per frame (the CLI takes DX,DY).
    """

    frames: int = 100
    dreams: tuple[DreamConfig, ...] = (LIGHT_DREAM,)
    cycle_every: int = 50
    zoom: tuple[float, float] = (1.05, 1.05)
    rotate: tuple[float, float] = (0.0, 0.0)
    shift: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise ConfigError("frames", self.frames, "an integer >= 1 (frame 0 is the source)")
        dreams = self.dreams
        if isinstance(dreams, DreamConfig):
            dreams = (dreams,)
        if not isinstance(dreams, (tuple, list)) or not dreams:
            raise ConfigError("dreams", dreams, "one or more DreamConfigs")
        for d in dreams:
            if not isinstance(d, DreamConfig):
                raise ConfigError("dreams", d, "DreamConfig values")
            if d.param != "pixel":
                raise ConfigError("param", d.param, "pixel (a zoom video dreams on the pixels of each frame)")
        object.__setattr__(self, "dreams", tuple(d if d.seed == 0 else d.replace(seed=0) for d in dreams))
        if isinstance(self.cycle_every, bool) or not isinstance(self.cycle_every, int) or self.cycle_every < 1:
            raise ConfigError("cycle_every", self.cycle_every, "an integer >= 1 (frames per cycle stage)")
        zoom_allowed = f"a number > 0 and <= {MAX_ZOOM:g}, or START:END (1.05 zooms in 5% per frame)"
        zoom = _pair("zoom", self.zoom, zoom_allowed)
        for z in zoom:
            if not 0 < z <= MAX_ZOOM:
                raise ConfigError("zoom", z, zoom_allowed)
        rotate_allowed = f"degrees per frame from -{MAX_ROTATE:g} to {MAX_ROTATE:g}, or START:END"
        rotate = _pair("rotate", self.rotate, rotate_allowed)
        for r in rotate:
            if abs(r) > MAX_ROTATE:
                raise ConfigError("rotate", r, rotate_allowed)
        shift = _pair("shift", self.shift, "(dy, dx) in pixels per frame, finite numbers")
        object.__setattr__(self, "zoom", zoom)
        object.__setattr__(self, "rotate", rotate)
        object.__setattr__(self, "shift", shift)

    def replace(self, **changes: Any) -> ZoomConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def ramped(self) -> bool:
        """Whether zoom or rotate change over the video (then every frame depends on `frames`)."""
        return self.zoom[0] != self.zoom[1] or self.rotate[0] != self.rotate[1]

    def _position(self, frame: int) -> float:
        """Where `frame` (1 .. frames-1) sits on the ramps: 0 for frame 1, 1 for the last frame."""
        if not 1 <= frame < max(self.frames, 2):
            raise ValueError(f"frame {frame} is not a dreamed frame of a {self.frames}-frame video")
        return (frame - 1) / (self.frames - 2) if self.frames > 2 else 0.0

    def dream_at(self, frame: int) -> DreamConfig:
        """The dream settings that make `frame` (1 .. frames-1)."""
        self._position(frame)
        return self.dreams[((frame - 1) // self.cycle_every) % len(self.dreams)]

    def feedback_at(self, frame: int) -> tuple[float, float, tuple[float, float]]:
        """(zoom, rotate, (dy, dx)) applied to frame - 1 to make `frame` (1 .. frames-1)."""
        t = self._position(frame)
        zoom = self.zoom[0] + t * (self.zoom[1] - self.zoom[0])
        rotate = self.rotate[0] + t * (self.rotate[1] - self.rotate[0])
        return zoom, rotate, self.shift

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for manifests and metadata); `from_dict` reads it back."""
        return {
            "frames": self.frames,
            "dreams": [d.to_dict() for d in self.dreams],
            "cycle_every": self.cycle_every,
            "zoom": list(self.zoom),
            "rotate": list(self.rotate),
            "shift": list(self.shift),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZoomConfig:
        data = dict(data)
        if "dreams" in data:
            data["dreams"] = tuple(DreamConfig.from_dict(d) for d in data["dreams"])
        for key in ("zoom", "rotate", "shift"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)


def parse_ramp(name: str, text: str) -> tuple[float, float]:
    """``1.05`` -> (1.05, 1.05); ``1.02:1.08`` -> (1.02, 1.08). Range checks are ZoomConfig's."""
    parts = str(text).split(":")
    allowed = "a number, or START:END to ramp linearly over the frames (e.g. 1.02:1.08)"
    if len(parts) not in (1, 2):
        raise ConfigError(name, text, allowed)
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(name, text, allowed) from None
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(name, text, allowed)
    return (values[0], values[-1])


def parse_shift(text: str) -> tuple[float, float]:
    """``DX,DY`` in pixels per frame -> (dy, dx)."""
    parts = str(text).split(",")
    allowed = "DX,DY in pixels per frame, e.g. 2,0 (right) or 0,-1.5 (up)"
    if len(parts) != 2:
        raise ConfigError("shift", text, allowed)
    try:
        dx, dy = (float(p) for p in parts)
    except ValueError:
        raise ConfigError("shift", text, allowed) from None
    if not (math.isfinite(dx) and math.isfinite(dy)):
        raise ConfigError("shift", text, allowed)
    return (dy, dx)


def frame_seed(seed: int, video: int, frame: int) -> int:
    """The seed of one frame's dream (or, for frame 0, of a noise source): a hash of the three.

    A 63-bit integer that depends only on its arguments, never on run order or batch make-up.
    """
    for name, value in (("seed", seed), ("video", video), ("frame", frame)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    digest = hashlib.blake2b(f"dreamer-zoom:{seed}:{video}:{frame}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def quantize(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) or (1,3,H,W) float in [0,1], any device -> (H,W,3) uint8 on the CPU (clamped,
    rounded): exactly what is saved, so it is also what is fed back."""
    from ..io.images import to_uint8

    return to_uint8(image)


def frame_to_tensor(frame: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H,W,3) uint8 -> (1,3,H,W) float32 in [0,1] on `device`; `quantize` inverts it exactly."""
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"a frame must be uint8 (H,W,3), got {array.dtype} {array.shape}")
    t = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    return t.permute(2, 0, 1)[None].float() / 255.0


@dataclass(frozen=True, eq=False)
class ZoomVideo:
    """One video to make.

    - ``start``: (1,3,H,W) float in [0,1] (any device): the source when ``done`` is 0, otherwise
      the last finished frame (frame ``done - 1``, e.g. read back from the frame store).
    - ``seed`` and ``index``: the video's seed and its number in the batch; with the frame
      index they make each frame's seed (`frame_seed`).
    - ``done``: frames already finished (resume); 0 starts from the source.
    """

    start: torch.Tensor
    config: ZoomConfig = ZoomConfig()
    seed: int = 0
    index: int = 0
    done: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.start, torch.Tensor) or self.start.dim() != 4 or self.start.shape[:2] != (1, 3):
            shape = tuple(self.start.shape) if isinstance(self.start, torch.Tensor) else type(self.start).__name__
            raise ValueError(f"start must be a (1,3,H,W) tensor, got {shape}")
        if not isinstance(self.config, ZoomConfig):
            raise TypeError("config must be a ZoomConfig")
        for name in ("seed", "index"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, value, "an integer >= 0")
        if isinstance(self.done, bool) or not isinstance(self.done, int) or not 0 <= self.done <= self.config.frames:
            raise ConfigError("done", self.done, f"0 to {self.config.frames} finished frames")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every frame."""
        return (int(self.start.shape[-2]), int(self.start.shape[-1]))


@dataclass(frozen=True, eq=False)
class ZoomFrame:
    """A finished frame: video ``video`` (position in the list given to `zoom_frames`), frame ``index``,
    ``image`` (H,W,3) uint8 RGB on the CPU."""

    video: int
    index: int
    image: np.ndarray


DreamFn = Callable[..., torch.Tensor]


def _group_key(video: ZoomVideo, frame: int) -> tuple:
    # every random draw (jitter, scale, rotation) comes from each video's own seed, so videos of
    # one size and one dream setting can share a batch
    return (video.size, video.config.dream_at(frame))


def zoom_frames(
    videos: Sequence[ZoomVideo],
    network,
    *,
    batch_size: int | None = None,
    dream: DreamFn | None = None,
) -> Iterator[ZoomFrame]:
    """Make the frames of several videos, yielding each as soon as it is finished.

    Frames are produced in rounds: each round advances every unfinished video by one frame.
    Within a round, videos whose next frame has the same size and the same dream settings are
    dreamed together as one batch (at most `batch_size` images; None: no limit), each with
    its own seed, so a batch gives the same frames as its videos made one by one (up to float
    rounding in the batched convolutions). A video with ``done == 0`` first yields its frame 0
    (the quantised source); a finished video (``done == frames``) yields nothing.

    `dream` replaces `dreamer.loops.run_config` (same signature; its network is the one
    `PreparedNetwork` this call holds for all frames), e.g. to watch or wrap it.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError("batch_size", batch_size, "an integer >= 1, or None for no limit")
    if dream is None:
        from ..loops import run_config as dream
    from ..backend import prepare

    network = prepare(network)  # one prepared network (folded copy, CUDA graphs) for every frame
    device = network.device
    state: list[np.ndarray] = []
    position: list[int] = []
    for i, video in enumerate(videos):
        state.append(quantize(video.start))
        position.append(max(video.done, 1))
        if video.done == 0:
            yield ZoomFrame(i, 0, state[i])

    while True:
        groups: dict[tuple, list[int]] = {}
        for i, video in enumerate(videos):
            if position[i] < video.config.frames:
                groups.setdefault(_group_key(video, position[i]), []).append(i)
        if not groups:
            return
        for (_, config), members in groups.items():
            step = batch_size or len(members)
            for lo in range(0, len(members), step):
                chunk = members[lo : lo + step]
                images = []
                for i in chunk:
                    zoom, rotate, shift = videos[i].config.feedback_at(position[i])
                    images.append(T.feedback(frame_to_tensor(state[i], device), zoom=zoom, rotate=rotate, shift=shift))
                seeds = [frame_seed(videos[i].seed, videos[i].index, position[i]) for i in chunk]
                out = dream(torch.cat(images), network, config, seeds=seeds)
                for j, i in enumerate(chunk):
                    state[i] = quantize(out[j])
                    yield ZoomFrame(i, position[i], state[i])
                    position[i] += 1
