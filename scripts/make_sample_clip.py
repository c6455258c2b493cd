"""Make samples/cat_pan.mp4: a 3-second 256x144 clip for `dreamer video` (slow pan and zoom
over samples/chelsea.png, with a soft synthetic chord), H.264 + AAC, well under 300 KB.

    python scripts/make_sample_clip.py [-o samples/cat_pan.mp4]

The motion is known exactly (see `camera`), so scripts/video_bench.py can measure flicker
against the true motion rather than an estimate.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT, FPS, SECONDS = 256, 144, 24, 3
RATE = 22050  # audio samples per second


def camera(t: float, photo_size: tuple[int, int]) -> tuple[float, float, float]:
    """(centre x, centre y, width of the view) in photo pixels at time t (0..1)."""
    pw, ph = photo_size
    ease = 0.5 - 0.5 * math.cos(math.pi * t)  # slow in, slow out
    view = pw * (0.78 - 0.18 * ease)  # zooms in from 78 % to 60 % of the photo's width
    cx = pw * (0.42 + 0.16 * ease)  # pans right
    cy = ph * (0.50 - 0.06 * ease)  # and a little up
    return cx, cy, view


def frame_at(photo: Image.Image, t: float) -> np.ndarray:
    cx, cy, view = camera(t, photo.size)
    scale = view / WIDTH  # photo pixels per output pixel
    # output pixel (x, y) shows photo pixel (a x + b y + c, d x + e y + f)
    x0, y0 = cx - scale * WIDTH / 2, cy - scale * HEIGHT / 2
    out = photo.transform((WIDTH, HEIGHT), Image.Transform.AFFINE, (scale, 0, x0, 0, scale, y0),
                          resample=Image.Resampling.BICUBIC)
    return np.asarray(out.convert("RGB"))


def chord(seconds: float) -> np.ndarray:
    """A soft A-minor chord with a fade in and out, mono float32 in [-1, 1]."""
    t = np.arange(int(RATE * seconds)) / RATE
    wave = sum(a * np.sin(2 * np.pi * f * t) for f, a in ((220.0, 0.20), (261.63, 0.12), (329.63, 0.12)))
    fade = np.minimum(1.0, np.minimum(t / 0.4, (seconds - t) / 0.6))
    return (wave * fade).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "samples" / "cat_pan.mp4")
    args = parser.parse_args()
    photo = Image.open(ROOT / "samples" / "chelsea.png").convert("RGB")
    count = FPS * SECONDS
    with av.open(str(args.output), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "26", "preset": "slow"}
        sound = container.add_stream("aac", rate=RATE)
        sound.layout = "mono"
        sound.bit_rate = 32000
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(frame_at(photo, i / (count - 1)), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = chord(SECONDS)
        for k in range(0, len(samples), 1024):
            block = av.AudioFrame.from_ndarray(samples[None, k : k + 1024], format="flt", layout="mono")
            block.sample_rate, block.pts = RATE, k
            container.mux(sound.encode(block))
        container.mux(sound.encode(None))
    print(f"{args.output}: {count} frames, {args.output.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
