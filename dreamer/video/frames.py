"""Dreaming a sequence of frames so that the dream moves with the scene.

Pure engine: never prints, never touches files. Frames are uint8 (H, W, 3) RGB arrays in and
out; `dream_streams` yields each dreamed frame as soon as it is made (the caller stores it).

The recurrence, for input frames x_0, x_1, ... and dreams d_0, d_1, ...::

    d_0 = dream(x_0)
    s_k = x_k + w_k * warp(d_{k-1} - x_{k-1}, flow_k)          (the start of frame k's dream)
    d_k = s_k + (1 - w_k) * (dream(s_k) - s_k)                   with w_k = blend * mask_k

`flow_k` says where each pixel of x_k was in x_{k-1} (backward optical flow of the *input*
frames, `dreamer.video.flow`), so what the dream added to the previous frame moves with the
scene. `mask_k` is 0 where that is unreliable (occlusions, new content at the edges): there
the frame is dreamed afresh. Where it is reliable, the carried dream is kept with weight
`blend` and only the rest, ``1 - blend``, comes from this frame's dream: the dream is an
exponential moving average along the motion, so it neither flickers (each frame's own dream
is a small part) nor piles up over a long video (the detail stays about one dream's size).
Carrying the dream's *difference* from its input, not the dream itself, keeps the new
frame's own colours and light. `blend` 0 dreams every frame independently; with
``flow="none"`` the difference is carried unmoved (good for a still camera only).

Each dream is quantised to uint8 before it is carried, and every frame's random stream is
seeded by `frame_seed(seed, video, frame)`: a run resumed from its stored frames continues
exactly like an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import DreamConfig
from ..errors import ConfigError, ImageError
from ..zoom.feedback import frame_seed, frame_to_tensor, quantize
from .flow import FLOW_METHODS, Motion, motion, warp

__all__ = [
    "VIDEO_DREAM",
    "DEFAULT_BLEND",
    "VideoConfig",
    "VideoInput",
    "DreamedFrame",
    "with_motion",
    "carry",
    "settle",
    "dream_streams",
    "dream_frames",
]

#: The per-frame dream unless told otherwise: lighter than a still image's, because it runs on
#: every frame and, with a blend, each frame continues the previous frame's dream.
VIDEO_DREAM = DreamConfig(octaves=2, steps=5)
#: How much of the previous frame's dream is carried into the next by default.
DEFAULT_BLEND = 0.8


@dataclass(frozen=True)
class VideoConfig:
    """How a video is dreamed (plain data; validated on creation).

    - ``dream``: the per-frame dream (``param`` must be pixel); its ``seed`` seeds the video.
    - ``flow``: ``farneback`` (OpenCV optical flow with an occlusion mask) or ``none``.
    - ``blend``: 0 to 1, the share of the previous frame's dream carried into the next one.
    """

    dream: DreamConfig = VIDEO_DREAM
    flow: str = "farneback"
    blend: float = DEFAULT_BLEND

    def __post_init__(self) -> None:
        if not isinstance(self.dream, DreamConfig):
            raise ConfigError("dream", self.dream, "a DreamConfig")
        if self.dream.param != "pixel":
            raise ConfigError("param", self.dream.param, "pixel (a video is dreamed on the pixels of each frame)")
        if self.flow not in FLOW_METHODS:
            raise ConfigError("flow", self.flow, " or ".join(FLOW_METHODS))
        if (isinstance(self.blend, bool) or not isinstance(self.blend, (int, float))
                or not math.isfinite(self.blend) or not 0 <= self.blend <= 1):
            raise ConfigError("blend", self.blend, "a number from 0 (each frame alone) to 1")
        object.__setattr__(self, "blend", float(self.blend))

    @property
    def seed(self) -> int:
        return self.dream.seed

    @property
    def uses_flow(self) -> bool:
        """Whether optical flow is computed (not for ``none``, nor when nothing is carried)."""
        return self.flow != "none" and self.blend > 0

    def replace(self, **changes: Any) -> VideoConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"dream": self.dream.to_dict(), "flow": self.flow, "blend": self.blend}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoConfig:
        data = dict(data)
        if "dream" in data:
            data["dream"] = DreamConfig.from_dict(data["dream"])
        return cls(**data)


@dataclass(frozen=True, eq=False)
class VideoInput:
    """One video to dream.

    - ``frames``: its input frames from frame ``done`` on: uint8 (H, W, 3) arrays, or
      ``(frame, Motion | None)`` pairs when ``with_motion`` already ran (e.g. in a thread).
    - ``seed``, ``index``: with the frame number they seed each frame (`frame_seed`).
    - ``done``: frames already dreamed (resume); then ``previous`` is (input frame done-1,
      its dream), both uint8 (H, W, 3), the state the next frame continues from.
    """

    frames: Iterable[Any]
    seed: int = 0
    index: int = 0
    done: int = 0
    previous: tuple[np.ndarray, np.ndarray] | None = None
    motion_ready: bool = False

    def __post_init__(self) -> None:
        for name in ("seed", "index", "done"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, value, "an integer >= 0")
        if self.previous is not None:
            if len(self.previous) != 2 or self.previous[0].shape != self.previous[1].shape:
                raise ValueError("previous must be (input frame, its dream) of one size")


@dataclass(frozen=True, eq=False)
class DreamedFrame:
    """Frame ``index`` of video ``video`` (its position in the list given to `dream_streams`):
    ``image`` the dream, ``source`` the input frame, both uint8 (H, W, 3) on the CPU."""

    video: int
    index: int
    image: np.ndarray
    source: np.ndarray


def with_motion(
    frames: Iterable[np.ndarray], method: str, previous: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, Motion | None]]:
    """Pair each frame with its `Motion` from the frame before (None for the first frame
    when no `previous` is given). Runs the optical flow: put it in a background thread."""
    prev = previous
    for frame in frames:
        yield frame, (motion(prev, frame, method) if prev is not None else None)
        prev = frame


def carry(
    frame: torch.Tensor, prev_frame: torch.Tensor, prev_dream: torch.Tensor, motion: Motion, blend: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The start of a frame's dream and the weight of what it carries (see the module doc).

    Tensors (1, 3, H, W) in [0, 1] on one device. Returns ``start`` (1, 3, H, W) in [0, 1]:
    `frame` plus what the dream added to the previous frame, moved along the flow, times
    ``weight`` = `blend` x the motion's mask ((1, 1, H, W) in [0, blend]).
    """
    detail = prev_dream - prev_frame
    if motion.flow is not None:
        detail = warp(detail, torch.from_numpy(np.array(motion.flow, dtype=np.float32)))
    if motion.mask is not None:
        mask = torch.from_numpy(np.array(motion.mask, dtype=np.float32)).to(frame.device)[None, None]
    else:
        mask = torch.ones_like(frame[:, :1])
    weight = blend * mask
    return (frame + weight * detail).clamp(0.0, 1.0), weight


def settle(start: torch.Tensor, dreamed: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """A frame's result: its `start` plus ``1 - weight`` of what its dream changed (the carried
    share of each pixel is already in `start`). Tensors (B, C, H, W); `weight` None means 0."""
    if weight is None:
        return dreamed
    return (start + (1 - weight) * (dreamed - start)).clamp(0.0, 1.0)


DreamFn = Callable[..., torch.Tensor]


def dream_streams(
    videos: Sequence[VideoInput],
    network,
    config: VideoConfig = VideoConfig(),
    *,
    batch_size: int | None = None,
    dream: DreamFn | None = None,
) -> Iterator[DreamedFrame]:
    """Dream several videos, yielding each frame as soon as it is made.

    Frames come in rounds: each round takes the next frame of every unfinished video; videos
    whose frames have the same size are dreamed together as one batch (at most `batch_size`;
    None: no limit), each with its own seed, so a batch gives the frames its videos would give
    one by one (up to float rounding in batched convolutions). A video ends when its frames do.
    `network` is a Network or a `PreparedNetwork` (prepared here once otherwise); `dream`
    replaces `dreamer.loops.deepdream.dream` (same signature), e.g. to watch or wrap it.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError("batch_size", batch_size, "an integer >= 1, or None for no limit")
    if dream is None:
        from ..loops.deepdream import dream
    from ..backend import prepare

    network = prepare(network)  # one prepared network (folded copy, CUDA graphs) for every frame
    device = network.device
    method = config.flow if config.uses_flow else "none"
    streams: list[Iterator[Any] | None] = []
    state: list[tuple[np.ndarray, np.ndarray] | None] = []
    position: list[int] = []
    for video in videos:
        previous = video.previous if video.done else None
        if video.done and previous is None:
            raise ValueError(f"video {video.index} resumes after {video.done} frames but has no previous frame")
        frames = video.frames if video.motion_ready else with_motion(
            video.frames, method, previous[0] if previous is not None and config.blend > 0 else None)
        streams.append(iter(frames))
        state.append(previous)
        position.append(video.done)

    while True:
        groups: dict[tuple[int, int], list[tuple]] = {}
        for i, stream in enumerate(streams):
            if stream is None:
                continue
            item = next(stream, None)
            if item is None:
                streams[i] = None
                continue
            frame, move = item
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 (H, W, 3) arrays, got {frame.dtype} {frame.shape}")
            current = frame_to_tensor(frame, device)
            previous = state[i]
            weight = None
            if previous is not None and config.blend > 0:
                if previous[0].shape != frame.shape:
                    raise ImageError(
                        f"frame {position[i]} of video {videos[i].index} is {frame.shape[1]}x{frame.shape[0]}, "
                        f"the frame before it {previous[0].shape[1]}x{previous[0].shape[0]}"
                    )
                start, weight = carry(current, frame_to_tensor(previous[0], device),
                                      frame_to_tensor(previous[1], device), move or Motion(), config.blend)
            else:
                start = current
            groups.setdefault(frame.shape[:2], []).append((i, frame, start, weight))
        if not groups:
            return
        for members in groups.values():
            step = batch_size or len(members)
            for lo in range(0, len(members), step):
                chunk = members[lo : lo + step]
                seeds = [frame_seed(videos[i].seed, videos[i].index, position[i]) for i, _, _, _ in chunk]
                out = dream(torch.cat([start for _, _, start, _ in chunk]), network, config.dream, seeds=seeds)
                for j, (i, frame, start, weight) in enumerate(chunk):
                    image = quantize(settle(start, out[j : j + 1], weight))
                    state[i] = (frame, image)
                    yield DreamedFrame(i, position[i], image, frame)
                    position[i] += 1


def dream_frames(
    frames: Iterable[np.ndarray], network, config: VideoConfig = VideoConfig(), *, seed: int | None = None,
) -> Iterator[np.ndarray]:
    """Dream one sequence of uint8 (H, W, 3) frames; yields the dreamed frames, uint8 (H, W, 3),
    one for each input frame, as they are made. `seed` defaults to ``config.dream.seed``."""
    video = VideoInput(frames, seed=config.seed if seed is None else seed)
    for made in dream_streams([video], network, config):
        yield made.image
