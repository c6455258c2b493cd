"""Small synthetic video files for the `dreamer video` tests (made with PyAV, in tmp folders).

The moving clip is a smooth random texture seen through a window that slides `step` pixels
to the right per frame, so the content moves `step` pixels to the left: frame k+1 shifted
right by `step` equals frame k (away from the edge where new content enters).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

TONE_RATE = 16000


def texture(height: int, width: int, seed: int = 3) -> np.ndarray:
    """A smooth (height, width, 3) uint8 texture with detail at several scales."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for cells in (4, 9, 18):
        coarse = torch.rand(1, 3, max(2, height // (48 // cells + 1)), max(2, width // (48 // cells + 1)), generator=g)
        layers.append(torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False))
    image = (layers[0] * 0.5 + layers[1] * 0.3 + layers[2] * 0.2).clamp(0, 1)
    return (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def moving_frames(n: int = 8, height: int = 48, width: int = 48, step: int = 2, seed: int = 3) -> list[np.ndarray]:
    """`n` frames of a texture whose content moves `step` pixels to the left per frame."""
    big = texture(height, width + step * n + 4, seed)
    return [np.ascontiguousarray(big[:, step * k : step * k + width]) for k in range(n)]


def write_clip(
    path: Path, frames: list[np.ndarray], *, fps: int = 10, audio: bool = True, rotation: int | None = None,
    codec: str = "libx264", audio_codec: str = "aac", fmt: str | None = None, pts: list[int] | None = None,
    time_base: int | None = None,
) -> Path:
    """Write `frames` (uint8 (H, W, 3)) as a video (format from the suffix, or `fmt`), with a
    440 Hz tone as long as the video when `audio`. `pts` (in 1/`time_base` s) makes a
    variable frame rate; `rotation` sets the display-rotation metadata."""
    height, width = frames[0].shape[:2] if frames else (48, 48)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12"}
        if time_base is not None:
            stream.time_base = Fraction(1, time_base)
            stream.codec_context.time_base = Fraction(1, time_base)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream(audio_codec, rate=TONE_RATE)
            sound.layout = "mono"
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = pts[i] if pts is not None else i
            if pts is not None:
                video_frame.time_base = Fraction(1, time_base or fps)
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
        if sound is not None:
            seconds = len(frames) / fps if pts is None else (pts[-1] + 1) / (time_base or fps)
            t = np.arange(int(TONE_RATE * seconds)) / TONE_RATE
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            fmt_name = "flt" if audio_codec in ("aac", "libopus") else "s16"
            for k in range(0, len(wave), 1024):
                chunk = wave[None, k : k + 1024]
                if fmt_name == "s16":
                    chunk = (chunk * 32767).astype(np.int16)
                audio_frame = av.AudioFrame.from_ndarray(chunk, format=fmt_name, layout="mono")
                audio_frame.sample_rate = TONE_RATE
                audio_frame.pts = k
                container.mux(sound.encode(audio_frame))
            container.mux(sound.encode(None))
    return Path(path)


def decode(path: Path) -> list[np.ndarray]:
    """Every frame of a video file as uint8 (H, W, 3) RGB."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def flicker(frames: list[np.ndarray], step: int) -> float:
    """Mean absolute difference (0-255) between consecutive frames after undoing the known
    motion (content moving `step` pixels left per frame)."""
    width = frames[0].shape[1]
    diffs = [
        np.abs(frames[k][:, : width - step].astype(np.float64) - frames[k - 1][:, step:].astype(np.float64)).mean()
        for k in range(1, len(frames))
    ]
    return float(np.mean(diffs))
