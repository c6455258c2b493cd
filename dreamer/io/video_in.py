"""Reading videos: any file PyAV can decode (MP4, MOV, MKV, WebM, GIF, ...) and folders of
numbered frames. The only place PyAV decodes frames; Pillow reads the frames of folders.

`probe_video` looks at a video before any work: streams, size, rotation, frame rate, frame
count, duration and audio, with a clear `ImageError` for files that are not videos, have no
video stream or no frames, or are corrupt. `read_frames` then yields the frames as uint8
(H, W, 3) RGB arrays on a **constant-rate timeline**: frame ``i`` is the picture shown at
``i / fps`` seconds after the first frame. For a constant-rate video that is simply every
frame; a variable-rate video (phone recordings, GIFs with uneven delays), or a video read at
another ``fps``, repeats or skips pictures so that the timing, and so the duration and the
sync with the audio, is kept. Frames are turned upright by the stream's rotation metadata.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dreamer.errors import EncoderError, ImageError, UsageError

__all__ = [
    "FRAME_SUFFIXES",
    "DEFAULT_FOLDER_FPS",
    "AudioTrack",
    "VideoInfo",
    "probe_video",
    "read_frames",
    "resize_frame",
]

#: Image files a frame folder may hold.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
#: Frame rate of a folder of frames unless told otherwise.
DEFAULT_FOLDER_FPS = 30
# frame rates a measured rate is snapped to when it is within 1 % (a phone's 29.87 is 30)
_COMMON_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50",
                                              "60000/1001", "60", "90", "100", "120"))
# frame intervals that differ from the typical one by more than this fraction make a rate variable
_VARIABLE_TOLERANCE = 0.25
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class AudioTrack:
    """The first audio stream of a video file (copied into MP4 outputs)."""

    index: int  # stream index in the container
    codec: str
    sample_rate: int
    channels: int
    duration: float | None  # seconds, when the container says


@dataclass(frozen=True, eq=False)
class VideoInfo:
    """What `probe_video` found. Sizes are (height, width) of the upright frames.

    - ``fps``: the constant rate `read_frames` delivers frames at; ``frames``: how many.
    - ``source_frames``: pictures in the file; differs from ``frames`` only when the rate is
      variable (``variable_rate``) or another fps was asked for.
    - ``start_time``: the first picture's time in the container, seconds (audio is aligned to it).
    - ``rotation``: degrees counter-clockwise that each decoded picture is turned to be upright.
    - ``intervals``: (shortest, longest) gap between pictures, seconds.
    """

    path: Path
    kind: str  # "file" or "folder"
    container: str
    codec: str
    size: tuple[int, int]
    fps: Fraction
    frames: int
    source_frames: int
    duration: float
    variable_rate: bool = False
    start_time: float = 0.0
    rotation: int = 0
    intervals: tuple[float, float] = (0.0, 0.0)
    audio: AudioTrack | None = None
    files: tuple[Path, ...] = field(default=(), repr=False)

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    def fingerprint(self) -> dict[str, Any]:
        """Plain data that changes when the video does (recorded for `--resume`)."""
        try:
            stat = os.stat(self.path)
            nbytes = stat.st_size if self.kind == "file" else sum(os.stat(f).st_size for f in self.files)
        except OSError:
            nbytes = None
        return {
            "kind": self.kind, "size": list(self.size), "fps": str(self.fps), "frames": self.frames,
            "source_frames": self.source_frames, "bytes": nbytes, "rotation": self.rotation,
        }


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise EncoderError("reading videos needs PyAV: pip install av") from exc
    return av


# --- probing ---------------------------------------------------------------------------------------


def probe_video(path: str | os.PathLike, *, fps: float | Fraction | None = None) -> VideoInfo:
    """Look at a video file or a folder of numbered frames without decoding more than one frame.

    `fps`: read the video at this constant rate instead of its own (frames are repeated or
    skipped to keep the timing); a folder's rate (default `DEFAULT_FOLDER_FPS`).
    Raises UsageError for a missing path, ImageError for anything unreadable.
    """
    path = Path(path)
    if fps is not None:
        fps = _check_fps(fps)
    if not path.exists():
        raise UsageError(f"no such file or folder: {path}")
    if path.is_dir():
        return _probe_folder(path, fps)
    if path.stat().st_size == 0:
        raise ImageError(f"{path} is empty (0 bytes)")
    return _probe_file(path, fps)


def _check_fps(fps: float | Fraction) -> Fraction:
    try:
        value = Fraction(fps).limit_denominator(1001)
    except (ValueError, TypeError, OverflowError):
        raise UsageError(f"invalid fps: {fps!r} (a number of frames per second > 0)") from None
    if not (0 < value <= 1000) or not math.isfinite(float(fps)) or value < Fraction(1, 100):
        raise UsageError(f"invalid fps: {fps!r} (from 0.01 to 1000 frames per second)")
    return value


def _snap_rate(measured: float, *candidates: Any) -> Fraction:
    """A tidy Fraction for a measured frame rate: the stream's own or a common rate within 1 %."""
    for rate in [Fraction(c) for c in candidates if c] + list(_COMMON_RATES):
        if rate > 0 and abs(float(rate) - measured) <= 0.01 * measured:
            return rate
    return Fraction(measured).limit_denominator(1001)


def _probe_file(path: Path, fps: Fraction | None) -> VideoInfo:
    av = _av()
    try:
        container = av.open(str(path))
    except PermissionError:
        raise ImageError(f"cannot read {path}: permission denied") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise ImageError(f"{path} is not a video PyAV can read (not a video, or corrupt or truncated): "
                         f"{_one_line(exc)}") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            has = f" (it has only {', '.join(kinds)})" if kinds else ""
            raise ImageError(f"{path} has no video stream{has}")
        stream = container.streams.video[0]
        times: list[float] = []
        tb = stream.time_base
        ends = 0.0  # where the last packet of any stream ends, seconds
        try:
            for packet in container.demux():
                if packet.size == 0:
                    continue
                ptb = packet.time_base
                if packet.pts is not None and ptb is not None:
                    ends = max(ends, float((packet.pts + (packet.duration or 0)) * ptb))
                if packet.stream_index != stream.index or packet.is_discard:
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                times.append(float(stamp * tb) if stamp is not None and tb is not None else math.nan)
        except (av.FFmpegError, OSError) as exc:
            raise ImageError(f"{path} is corrupt or truncated: {_one_line(exc)}") from None
        if not times:
            raise ImageError(f"{path} has no frames")
        _check_complete(path, container, ends)
        audio = None
        if container.streams.audio:
            a = container.streams.audio[0]
            ctx = a.codec_context
            duration = float(a.duration * a.time_base) if a.duration and a.time_base else None
            audio = AudioTrack(a.index, ctx.name, int(ctx.sample_rate or 0), int(ctx.channels or 0), duration)
        rates = (stream.average_rate, stream.guessed_rate, stream.base_rate)
        codec = stream.codec_context.name
        container_name = container.format.name
    first = _first_frame(path)
    rotation = _upright_turns(first.rotation) * 90
    height, width = first.height, first.width
    if rotation in (90, 270):
        height, width = width, height

    if any(math.isnan(t) for t in times):  # no timestamps: trust the stream's rate
        rate = next((Fraction(r) for r in rates if r), Fraction(DEFAULT_FOLDER_FPS))
        times = [i / float(rate) for i in range(len(times))]
    times.sort()
    start = times[0]
    gaps = np.diff(np.asarray(times)) if len(times) > 1 else np.zeros(0)
    gaps = gaps[gaps > 1e-9]  # two pictures at one time: the later wins, as a player shows it
    if len(gaps):
        typical = float(np.median(gaps))
        variable = bool(np.abs(gaps - typical).max() > _VARIABLE_TOLERANCE * typical)
        # a constant rate is measured over the whole video (precise); a variable one is read
        # at its typical rate (a phone's 30, a GIF's most common delay)
        measured = 1 / typical if variable else len(gaps) / float(times[-1] - times[0])
        own = _snap_rate(measured, *rates)
        intervals = (float(gaps.min()), float(gaps.max()))
    else:
        own = next((Fraction(r) for r in rates if r), Fraction(DEFAULT_FOLDER_FPS))
        typical, variable, intervals = 1 / float(own), False, (0.0, 0.0)
    duration = float(times[-1] - start) + (typical if len(gaps) else 1 / float(own))
    rate = fps or own
    if not variable and fps is None:
        frames = len(times)
    else:
        frames = max(1, round(duration * float(rate)))
    return VideoInfo(
        path=path, kind="file", container=container_name, codec=codec, size=(height, width), fps=rate,
        frames=frames, source_frames=len(times), duration=frames / float(rate), variable_rate=variable,
        start_time=start, rotation=rotation, intervals=intervals, audio=audio,
    )


def _check_complete(path: Path, container: Any, ends: float) -> None:
    """A file whose streams all stop well before the duration its header declares was cut off
    (a copy or recording that did not finish): ImageError rather than a silently short dream."""
    if not container.duration or ends <= 0:
        return
    begin = (container.start_time or 0) / 1_000_000
    declared = begin + container.duration / 1_000_000
    missing = declared - ends
    if missing > max(0.25, 0.02 * (declared - begin)):
        raise ImageError(
            f"{path} is truncated: its header says it lasts {declared - begin:.2f}s, but its data ends at "
            f"{ends - begin:.2f}s",
            hint="if the part it holds is what you want, save that part to a new file with another tool first",
        )


def _first_frame(path: Path) -> Any:
    av = _av()
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return frame
    except (av.FFmpegError, OSError) as exc:
        raise ImageError(f"{path} is corrupt or truncated: {_one_line(exc)}") from None
    raise ImageError(f"{path} is corrupt or truncated: no frame could be decoded")


def _upright_turns(rotation: float | None) -> int:
    """Quarter turns counter-clockwise that make a picture with this display rotation upright."""
    if not rotation or not math.isfinite(rotation):
        return 0
    return round(rotation / 90) % 4


def _numbered_frames(folder: Path) -> list[Path]:
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise ImageError(f"cannot list {folder}: {exc.strerror or exc}") from None
    found = []
    for name in names:
        p = folder / name
        if name.startswith(".") or p.suffix.lower() not in FRAME_SUFFIXES:
            continue
        digits = _DIGITS.findall(p.stem)
        if digits:
            found.append((int(digits[-1]), name, p))
    return [p for _, _, p in sorted(found)]


def _probe_folder(folder: Path, fps: Fraction | None) -> VideoInfo:
    from .images import check_image

    files = _numbered_frames(folder)
    if not files:
        raise ImageError(
            f"{folder} holds no numbered frames",
            hint=f"a frame folder holds images named with a number (frame_0001.png ...): {', '.join(FRAME_SUFFIXES)}",
        )
    height, width = check_image(files[0], max_pixels=2**62)  # the size limit is the caller's
    rate = fps or Fraction(DEFAULT_FOLDER_FPS)
    return VideoInfo(
        path=folder, kind="folder", container="frames", codec=files[0].suffix.lower().lstrip("."),
        size=(height, width), fps=rate, frames=len(files), source_frames=len(files),
        duration=len(files) / float(rate), files=tuple(files),
    )


# --- reading ---------------------------------------------------------------------------------------


def resize_frame(frame: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A uint8 (H, W, 3) frame resized to (height, width) with Pillow's bicubic filter
    (antialiased when shrinking); the frame itself when it already has that size."""
    height, width = size_hw
    if frame.shape[:2] == (height, width):
        return frame
    return np.array(Image.fromarray(frame, "RGB").resize((width, height), Image.Resampling.BICUBIC))


def read_frames(
    info: VideoInfo, start: int = 0, stop: int | None = None, *, size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Frames ``start .. stop-1`` of the constant-rate timeline of `info` (see the module doc),
    as uint8 (H, W, 3) RGB arrays, upright, resized to `size` (height, width) when given.

    Decodes from the beginning (frames before `start` are decoded, not converted). Raises
    ImageError when the file turns out corrupt or ends early, naming the frame.
    """
    stop = info.frames if stop is None else min(stop, info.frames)
    if not 0 <= start <= stop:
        raise ValueError(f"frames {start}..{stop} are not within 0..{info.frames}")
    if start == stop:
        return
    if info.kind == "folder":
        yield from _read_folder(info, start, stop, size)
    else:
        yield from _read_file(info, start, stop, size)


def _read_folder(info: VideoInfo, start: int, stop: int, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    from .images import check_image, load_image, to_uint8

    for path in info.files[start:stop]:  # a folder has no timing of its own: one picture per frame
        h, w = check_image(path, max_pixels=2**62)
        frame = to_uint8(load_image(path, max_pixels=2**62)) if h * w <= info.height * info.width else None
        if frame is None or frame.shape[:2] != info.size:
            h, w = frame.shape[:2] if frame is not None else (h, w)
            raise ImageError(
                f"{path} is {w}x{h}, but the frames of {info.path} "
                f"are {info.width}x{info.height} (from {info.files[0].name})"
            )
        yield resize_frame(frame, size or info.size)


def _read_file(info: VideoInfo, start: int, stop: int, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    av = _av()
    turns = info.rotation // 90
    period = 1 / float(info.fps)
    tolerance = 0.25 * period
    constant = info.frames == info.source_frames and not info.variable_rate

    def convert(frame: Any) -> np.ndarray:
        array = frame.to_ndarray(format="rgb24")
        if turns:
            array = np.ascontiguousarray(np.rot90(array, turns))
        return resize_frame(array, size or info.size)

    slot = 0  # next timeline frame to deliver
    decoded = 0
    pending: Any = None  # the latest picture, not yet known to be replaced
    try:
        with av.open(str(info.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                decoded += 1
                if constant:
                    if start <= slot < stop:
                        yield convert(frame)
                    slot += 1
                    if slot >= stop:
                        return
                    continue
                t = (frame.time if frame.time is not None else (decoded - 1) * period) - info.start_time
                if pending is not None:
                    # the pending picture is shown at every slot before this one's time
                    while slot < stop and slot * period < t - tolerance:
                        if slot >= start:
                            yield convert(pending)
                        slot += 1
                    if slot >= stop:
                        return
                pending = frame
    except (av.FFmpegError, OSError) as exc:
        raise ImageError(f"{info.path} is corrupt or truncated at frame {decoded}: {_one_line(exc)}") from None
    if decoded < info.source_frames or (constant and slot < stop):
        raise ImageError(
            f"{info.path} is truncated: it ended after {decoded} of its {info.source_frames} frames"
        )
    while pending is not None and slot < stop:  # the last picture lasts to the end
        if slot >= start:
            yield convert(pending)
        slot += 1
