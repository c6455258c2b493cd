"""Measure `dreamer video`: its overhead against `dreamer run` on the same frames, and how much
the optical flow reduces flicker.

    python scripts/video_bench.py speed   [--size 512] [--frames 8] [--octaves 2] [--steps 5] [--repeats 2]
    python scripts/video_bench.py flicker [--clip samples/cat_pan.mp4] [--model efficientnet-lite0] [--layer block3]

speed: seconds per frame of the whole `video` pipeline (decoding, optical flow, dreaming,
PNG frame store, MP4 encoding, audio copy) against what `dreamer run` does for each frame as
a PNG (read, dream, write), with the same network, settings and frames. The network is loaded
and prepared once (as `dreamer run` prepares it once for all its images), outside the timings. Passes alternate (run, video, run, video ...) so a machine whose
load changes affects both alike; each pass is reported, then the ratio of the medians.

flicker: the clip dreamed with --flow farneback, --flow none and --blend 0 (every frame on its
own); flicker is the mean absolute difference (0-255) between consecutive output frames after
moving the earlier one by the *true* camera motion of samples/cat_pan.mp4 (scripts/
make_sample_clip.py), over the pixels both frames show.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def _network(model: str, weights: str):
    from dreamer.models import load_model

    return load_model(model, weights=weights, device="cpu")


def _clip(folder: Path, size: int, frames: int) -> Path:
    """A size x size clip panning over a photo, with sound (made with the sample's recipe)."""
    import av
    from PIL import Image

    import make_sample_clip as sample

    photo = Image.open(ROOT / "samples" / "chelsea.png").convert("RGB")
    path = folder / "bench.mp4"
    sample.WIDTH = sample.HEIGHT = size
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=24)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=sample.RATE)
        sound.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(sample.frame_at(photo, i / 24 / sample.SECONDS), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        wave = sample.chord(frames / 24)
        for k in range(0, len(wave), 1024):
            block = av.AudioFrame.from_ndarray(wave[None, k : k + 1024], format="flt", layout="mono")
            block.sample_rate, block.pts = sample.RATE, k
            container.mux(sound.encode(block))
        container.mux(sound.encode(None))
    return path


def speed(args: argparse.Namespace) -> None:
    import torch

    from dreamer.config import DreamConfig, parse_layer_target
    from dreamer.io.images import load_image, save_image
    from dreamer.io.video_in import probe_video, read_frames
    from dreamer.loops.deepdream import dream
    from dreamer.video.frames import VideoConfig
    from dreamer.video.session import dream_videos

    from dreamer.backend import prepare

    torch.set_num_threads(args.threads)
    network = _network(args.model, args.weights)
    dream_config = DreamConfig(octaves=args.octaves, steps=args.steps, model=args.model,
                               layers=(parse_layer_target(args.layer or network.spec.default_layer),))
    config = VideoConfig(dream=dream_config, flow=args.flow)
    prepared = prepare(network)  # both sides use one prepared network, as `dreamer run` does for its images
    with tempfile.TemporaryDirectory(prefix="dreamer-video-bench-") as tmp:
        folder = Path(tmp)
        clip = _clip(folder, args.size, args.frames)
        pngs = []
        for i, frame in enumerate(read_frames(probe_video(clip))):
            path = folder / f"in_{i:03d}.png"
            save_image(torch.from_numpy(frame.copy()).permute(2, 0, 1).float() / 255, path)
            pngs.append(path)
        dream(load_image(pngs[0]), prepared, dream_config)  # warm-up, outside the timings

        def timed(work) -> tuple[float, float]:
            """(wall, CPU) seconds per frame; CPU time counts every thread of this process and
            is much less disturbed than wall time by other processes on a shared machine."""
            wall, cpu = time.perf_counter(), time.process_time()
            work()
            return (time.perf_counter() - wall) / len(pngs), (time.process_time() - cpu) / len(pngs)

        def run_pass() -> None:
            for i, path in enumerate(pngs):
                result = dream(load_image(path), prepared, dream_config)
                save_image(result[0], folder / f"out_{i:03d}.png", force=True)

        def video_pass() -> None:
            dream_videos([(clip, folder / "out.mp4")], prepared, config, force=True, warn=lambda m: None)

        runs, videos = [], []
        for _ in range(args.repeats):
            runs.append(timed(run_pass))
            videos.append(timed(video_pass))
            print(f"  run {runs[-1][0]:.3f} s/frame (CPU {runs[-1][1]:.3f})   "
                  f"video {videos[-1][0]:.3f} s/frame (CPU {videos[-1][1]:.3f})", flush=True)
    print(f"{args.model} {args.size}x{args.size}, {args.frames} frames, {args.octaves} octaves x {args.steps} steps, "
          f"flow {args.flow}, {args.threads} torch threads")
    for what, index in (("wall", 0), ("CPU", 1)):
        r = statistics.median(t[index] for t in runs)
        v = statistics.median(t[index] for t in videos)
        print(f"{what:4s}: run {r:.3f} s/frame, video {v:.3f} s/frame (medians of {len(runs)}): "
              f"video / run = {v / r:.3f} (overhead {100 * (v / r - 1):+.1f} %)")


def _true_motion_flicker(frames: list[np.ndarray], photo_size: tuple[int, int], count: int) -> float:
    """Mean |frame k - frame k-1 moved by the camera| over the pixels both show."""
    import torch

    import make_sample_clip as sample
    from dreamer.video.flow import warp

    height, width = frames[0].shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    diffs = []
    for k in range(1, len(frames)):
        cx1, cy1, v1 = sample.camera(k / (count - 1), photo_size)
        cx0, cy0, v0 = sample.camera((k - 1) / (count - 1), photo_size)
        s1, s0 = v1 / width, v0 / width
        px, py = cx1 + s1 * (xs - width / 2), cy1 + s1 * (ys - height / 2)  # photo point shown at (x, y) in frame k
        x0, y0 = (px - cx0) / s0 + width / 2, (py - cy0) / s0 + height / 2  # where frame k-1 shows it
        flow = torch.from_numpy(np.stack([x0 - xs, y0 - ys], -1).astype(np.float32))
        inside = (x0 >= 0) & (x0 <= width - 1) & (y0 >= 0) & (y0 <= height - 1)
        previous = torch.from_numpy(frames[k - 1].astype(np.float32)).permute(2, 0, 1)[None]
        moved = warp(previous, flow)[0].permute(1, 2, 0).numpy()
        diffs.append(np.abs(frames[k].astype(np.float32) - moved).mean(-1)[inside].mean())
    return float(np.mean(diffs))


def flicker(args: argparse.Namespace) -> None:
    import torch
    from PIL import Image

    from dreamer.config import DreamConfig, parse_layer_target
    from dreamer.io.video_in import probe_video, read_frames
    from dreamer.video.frames import VideoConfig
    from dreamer.video.session import dream_videos

    import make_sample_clip as sample

    torch.set_num_threads(args.threads)
    network = _network(args.model, args.weights)
    photo_size = Image.open(ROOT / "samples" / "chelsea.png").size
    info = probe_video(args.clip)
    count = sample.FPS * sample.SECONDS
    stop = min(info.frames, args.frames or info.frames)
    source = list(read_frames(info, 0, stop))
    dream_config = DreamConfig(octaves=args.octaves, steps=args.steps, model=args.model,
                               layers=(parse_layer_target(args.layer or network.spec.default_layer),))
    base = _true_motion_flicker(source, photo_size, count)  # resampling and codec noise of the clip itself
    print(f"{args.clip} ({stop} frames): input flicker {base:.2f}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="dreamer-video-flicker-") as tmp:
        for name, config in (
            ("farneback", VideoConfig(dream=dream_config)),
            ("none", VideoConfig(dream=dream_config, flow="none")),
            ("alone (--blend 0)", VideoConfig(dream=dream_config, blend=0.0)),
        ):
            out = Path(tmp) / f"{name.split()[0]}.frames"
            start = time.perf_counter()
            dream_videos([(args.clip, out)], network, config, end=f"{stop}f", warn=lambda m: None)
            seconds = time.perf_counter() - start
            frames = list(read_frames(probe_video(out)))
            changed = float(np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(frames, source)]))
            results[name] = _true_motion_flicker(frames, photo_size, count)
            print(f"  {name:18s} flicker {results[name]:6.2f}   change from the input {changed:5.2f}   "
                  f"{seconds / stop:.2f} s/frame", flush=True)
            if args.keep:
                keep = Path(args.keep) / f"{Path(args.clip).stem}.{name.split()[0]}.mp4"
                from dreamer.io.video import encode

                encode(frames, keep, fps=float(info.fps))
    alone, coherent = results["alone (--blend 0)"], results["farneback"]
    print(f"flicker alone / farneback = {alone / coherent:.2f}; "
          f"of the flicker the dream adds to the input's own: {(alone - base) / max(coherent - base, 1e-9):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("speed", "flicker"):
        p = sub.add_parser(name)
        p.add_argument("--model", default="googlenet" if name == "speed" else "efficientnet-lite0")
        p.add_argument("--weights", default="random:0" if name == "speed" else "pretrained")
        p.add_argument("--layer", default=None)
        p.add_argument("--octaves", type=int, default=2)
        p.add_argument("--steps", type=int, default=5)
        p.add_argument("--threads", type=int, default=1, help="torch threads (1: the background threads get the other cores)")
    s = sub.choices["speed"]
    s.add_argument("--size", type=int, default=512)
    s.add_argument("--frames", type=int, default=8)
    s.add_argument("--repeats", type=int, default=2)
    s.add_argument("--flow", default="farneback", choices=["farneback", "none"])
    f = sub.choices["flicker"]
    f.add_argument("--clip", type=Path, default=ROOT / "samples" / "cat_pan.mp4")
    f.add_argument("--frames", type=int, default=None, help="only the first N frames")
    f.add_argument("--keep", default=None, help="a folder to save the three dreamed videos in")
    args = parser.parse_args()
    speed(args) if args.what == "speed" else flicker(args)


if __name__ == "__main__":
    main()
