"""Which frames of a video are dreamed, and at what size: `--start`/`--end` times, `--size`,
`--max-pixels`. Plain arithmetic on a probed `dreamer.io.video_in.VideoInfo`; no decoding.

Times are written ``1.5s`` or ``1.5`` (seconds), ``1:02.5`` (minutes:seconds) or ``30f``
(frame number, counting from 0). Frame ``i`` is on screen from ``i / fps`` to
``(i + 1) / fps``: ``--start T`` begins with the frame on screen at T, ``--end T`` stops
before the first frame that starts at or after T (so ``--start 1s --end 2s`` at 30 fps is
frames 30 to 59, and ``--start 30f --end 60f`` the same). The part dreamed is the whole
output: frames outside it are dropped, and the audio is cut to match.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from ..errors import ImageError, UsageError

__all__ = ["TimePoint", "parse_time", "frame_range", "working_size"]

_TIME_RE = re.compile(r"(?:(?P<min>\d+):)?(?P<sec>\d+(?:\.\d*)?|\.\d+)s?")
_FRAME_RE = re.compile(r"(?P<frame>\d+)f")
_ALLOWED = "a time like 1.5s, 1.5 or 1:02.5, or a frame number like 30f"
# a time within this fraction of a frame of a frame's start counts as that frame's start
_EPSILON = 1e-6


@dataclass(frozen=True)
class TimePoint:
    """A point in a video: ``seconds`` or ``frame`` (exactly one is set); ``text`` as typed."""

    text: str
    seconds: float | None = None
    frame: int | None = None

    def position(self, fps: Fraction) -> float:
        """Where the point is, in frames (fractional for a time between frame starts)."""
        if self.frame is not None:
            return float(self.frame)
        return float(self.seconds) * float(fps)  # type: ignore[arg-type]


def parse_time(text: str, *, option: str = "--start") -> TimePoint:
    """``1.5s`` / ``1.5`` / ``1:02.5`` -> seconds; ``30f`` -> frame 30. UsageError otherwise."""
    raw = str(text).strip().lower()
    found = _FRAME_RE.fullmatch(raw)
    if found:
        return TimePoint(text, frame=int(found.group("frame")))
    found = _TIME_RE.fullmatch(raw)
    if not found:
        raise UsageError(f"invalid {option}: {text!r} ({_ALLOWED})")
    seconds = float(found.group("sec")) + 60 * int(found.group("min") or 0)
    if found.group("min") and float(found.group("sec")) >= 60:
        raise UsageError(f"invalid {option}: {text!r} (seconds after a colon must be below 60)")
    if not math.isfinite(seconds):
        raise UsageError(f"invalid {option}: {text!r} ({_ALLOWED})")
    return TimePoint(text, seconds=seconds)


def frame_range(
    frames: int, fps: Fraction, start: TimePoint | None = None, end: TimePoint | None = None, *, name: str = "the video",
) -> tuple[int, int, bool]:
    """(first, stop, clipped): the frames ``first .. stop-1`` of a `frames`-frame video at `fps`
    that `start`/`end` select, and whether `end` lay beyond the video (then stop = frames).

    UsageError when `start` is at or after the end of the video, or `end` not after `start`.
    """
    duration = f"{frames} frames, {frames / float(fps):.2f}s"
    first = 0
    if start is not None:
        first = int(math.floor(start.position(fps) + _EPSILON))
        if first >= frames:
            raise UsageError(f"--start {start.text} is at or after the end of {name} ({duration})")
    stop, clipped = frames, False
    if end is not None:
        stop = int(math.ceil(end.position(fps) - _EPSILON))
        if stop > frames:
            stop, clipped = frames, True
        if stop <= first:
            what = f"--start {start.text}" if start is not None else "the start of the video"
            raise UsageError(f"--end {end.text} is not after {what} (nothing to dream)")
    return first, stop, clipped


def working_size(
    size_hw: tuple[int, int], *, size: int | None, max_pixels: int, name: str,
) -> tuple[int, int]:
    """(height, width) the frames are dreamed at: `size_hw`, or scaled so the longest side is
    `size`. Either must have at most `max_pixels` pixels: a larger video is an ImageError (like
    a larger image) that suggests --size, a `size` that makes too many pixels a UsageError (the
    rule of `dreamer.io.images.check_pixels`). A huge video dreamed with --size is decoded at its
    own size and scaled down frame by frame."""
    from ..io.images import check_pixels, scaled_size

    height, width = size_hw
    if size is None:
        if height * width > max_pixels:
            raise ImageError(
                f"{name} is {width}x{height} = {height * width} pixels per frame, more than the limit of "
                f"{max_pixels}; pass --size N to dream it smaller, or --max-pixels N to raise the limit"
            )
        return size_hw
    scaled = scaled_size(size_hw, size)
    check_pixels(name, scaled, size=size, max_pixels=max_pixels)
    return scaled
