"""`dreamer video`: dream an existing video, frame to frame coherent with optical flow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ..errors import OutputError, UsageError
from . import main
from .controls import checked_dream, control_options, controls_from_flags
from .common import (
    FiniteFloat, check_targets, config_from_flags, dream_options, force_option, max_pixels_option, open_network,
    option, output_option, runtime_options, size_option, warn,
)
from .progress import ProgressLine
from .scale import ray_option, video_on_ray

KINDS = ("mp4", "gif", "webp", "frames")


def _config(flags: dict[str, Any], flow: str | None, blend: float | None, quiet: bool):
    """The VideoConfig: default < preset < flags, like `dreamer run`, except that octaves and
    steps come from the video defaults unless --octaves/--steps are given (a still-image
    preset's full dream on every frame would be many times slower), and a preset's fft
    parameterisation becomes pixel (fft grows a picture instead of dreaming on a frame)."""
    from ..video.frames import DEFAULT_BLEND, VIDEO_DREAM, VideoConfig

    dream, _ = config_from_flags(flags)
    changes: dict[str, Any] = {}
    if flags.get("octaves") is None:
        changes["octaves"] = VIDEO_DREAM.octaves
    if flags.get("steps") is None:
        changes["steps"] = VIDEO_DREAM.steps
    if dream.param == "fft":
        if flags.get("param") == "fft":
            raise UsageError("--param fft grows a picture from noise; a video is dreamed with --param pixel")
        warn(f"preset {flags.get('preset')!r} uses --param fft, which grows a picture instead of dreaming on "
             "one; video frames use --param pixel with its layers and classes", quiet=quiet)
        dream = dream.classic()
    dream = dream.replace(**changes)
    check_targets(dream)  # a typo in a layer or class is reported before anything is read
    return VideoConfig(dream=dream, flow=flow or "farneback", blend=DEFAULT_BLEND if blend is None else blend)


def _outputs(inputs: list[Path], text: str | None, fmt: str | None) -> list[Path]:
    """Where each input's dream goes, decided as `dreamer zoom` does: one input writes -o itself
    (an existing folder is a frames-folder output, unless --format names a video kind); -o
    ending in / (or naming a folder for several inputs) receives ``NAME.dream.EXT`` for each."""
    from ..io.atomic import check_name, os_error_message
    from ..io.video import output_kind
    from ..video.session import default_output

    kind = fmt or "mp4"
    if text is None:
        return [default_output(p, kind) for p in inputs]
    path = Path(text).expanduser()
    wants_folder = text.endswith(("/", os.sep)) and fmt != "frames"
    if len(inputs) == 1 and not wants_folder and not (path.is_dir() and fmt not in (None, "frames")):
        named = output_kind(path)  # an unknown extension is a usage error here
        if fmt is not None and fmt != named:
            raise UsageError(f"-o {path} is a {named} output but --format {fmt} was given", hint="drop one of them")
        return [path]
    if path.suffix.lower() in (".mp4", ".gif", ".webp"):
        raise UsageError(f"-o {path} names one video but {len(inputs)} inputs were given",
                         hint="with several inputs, -o names a folder for the videos")
    if path.exists() and not path.is_dir():
        raise UsageError(f"-o {path} is a file; it must be a folder for the videos")
    if not path.exists() and path.absolute().parent.is_dir():
        check_name(path, what="output folder")
        try:
            path.mkdir()
        except OSError as exc:
            raise OutputError(os_error_message(path, exc)) from exc
    return [default_output(p, kind, path) for p in inputs]


@main.command()
@click.argument("inputs", nargs=-1, metavar="VIDEO...")
@option("--flow", type=click.Choice(["farneback", "none"]), show_default="farneback",
        help="Optical flow that moves the dream with the scene; none carries it unmoved (a still camera).")
@option("--blend", type=FiniteFloat(min=0.0, max=1.0), metavar="W", show_default="0.8",
        help="Share of the previous frame's dream carried into the next: 0 dreams each frame alone.")
@option("--start", metavar="TIME", show_default="the start",
        help="Dream from here: 1.5s, 1:02.5, or a frame number like 30f.")
@option("--end", metavar="TIME", show_default="the end", help="Dream up to here (not included); frames outside are dropped.")
@option("--fps", type=FiniteFloat(min=0.01, max=1000.0), metavar="X", show_default="the video's; 30 for a frame folder",
        help="Frame rate of a folder of frames; a video file is read at this rate (frames repeated or skipped).")
@dream_options(octaves=2, steps=5)
@control_options
@runtime_options
@size_option(extra="The output has that size.")
@max_pixels_option
@output_option
@option("--format", "fmt", type=click.Choice(KINDS), show_default="mp4", help="Kind of video when -o does not say.")
@option("--batch", type=click.IntRange(min=1), metavar="N", show_default="all",
        help="Same-size videos dreamed together per forward pass.")
@option("--no-audio", is_flag=True, help="Leave the sound out (by default it is copied into .mp4 outputs).")
@option("--keep-frames", is_flag=True, help="Keep the PNG frames beside a finished .mp4/.gif/.webp.")
@force_option
@option("--resume", "-r", is_flag=True, help="Continue an interrupted run from its last finished frame.")
@ray_option
def video(
    inputs: tuple[str, ...], flow: str | None, blend: float | None, start: str | None, end: str | None,
    fps: float | None, size: int | None, max_pixels: int | None, output: str | None, fmt: str | None,
    batch: int | None, no_audio: bool, keep_frames: bool, force: bool, resume: bool, quiet: bool,
    ray_address: str | None, **flags: Any,
) -> None:
    """Dream VIDEO... so that the dream moves with the scene instead of flickering.

    VIDEO is any file PyAV decodes (MP4, MOV, MKV, WebM, GIF ...) or a folder of numbered
    frames. Each frame is dreamed (default 2 octaves x 5 steps on the model's default layer)
    starting from the previous frame's dream moved along the optical flow; where the flow is
    unreliable (things appearing, occlusions) the frame is dreamed afresh. The frame rate,
    size, duration and sound (copied unchanged into .mp4) are kept.

    \b
    Examples:
      dreamer video clip.mp4 --layer mixed4c -o clip.dream.mp4
      dreamer video clip.mp4 --preset low-level --size 512 --start 2s --end 6s
      dreamer video frames/ --fps 24 -o dream.gif
      dreamer video a.mp4 b.mp4 -o dreams/            # same-size videos dreamed as one batch
      dreamer video clip.mp4 --blend 0 -o flicker.mp4  # every frame on its own
      dreamer video clip.mp4 --keep-colors --mask sky.png   # the footage's colours; dream the sky only
      dreamer video clip.mp4 -o clip.dream.mp4 --resume   # after Ctrl-C
    """
    from ..video.session import VideoInterrupted, VideoJob, dream_videos
    from ..video.source import parse_time

    if force and resume:
        raise UsageError("give --force or --resume, not both", hint="--resume continues a run; --force starts it over")
    if not inputs:
        raise UsageError("no video given", hint="dreamer video clip.mp4 (or a folder of numbered frames)")
    start_at = parse_time(start, option="--start") if start is not None else None
    end_at = parse_time(end, option="--end") if end is not None else None
    controls = controls_from_flags(flags, max_pixels=max_pixels)[0]
    config = _config(flags, flow, blend, quiet)
    from ..steer import check_controls

    check_controls(config.dream, controls)
    # the plain classic loop without controls (the frames are then exactly what they were before
    # controls existed); with them, the steered loop, as zoom frames are dreamed
    steering = {} if controls.empty else {"dream": checked_dream(controls), "controls": controls.to_dict()}
    paths = []
    for text in inputs:
        path = Path(text).expanduser()
        if not path.exists():
            raise UsageError(f"no such file or folder: {text}", hint="give a video file or a folder of numbered frames")
        paths.append(path)
    outputs = _outputs(paths, output, fmt)
    if ray_address is not None:  # each video dreamed by a worker of a Ray cluster (dreamer.scale.video)
        return video_on_ray(
            [VideoJob(i, o) for i, o in zip(paths, outputs)], ray_address, config=config, weights=flags.get("weights"),
            device=flags.get("device"), batch=batch, quiet=quiet, start=start_at, end=end_at, size=size,
            max_pixels=max_pixels, fps=fps, audio=not no_audio, force=force, resume=resume, keep_frames=keep_frames,
            **steering,
        )
    model = config.dream.model

    def load():
        return open_network(model, flags.get("weights"), flags.get("device"), quiet=quiet)

    label = f"video {paths[0].stem}" if len(paths) == 1 else f"video {len(paths)} videos"
    bar = ProgressLine(label, quiet=quiet)

    def report(p) -> None:
        rate = f" {p.rate:.2f} frames/s" if p.rate else ""
        which = f"[{p.video + 1}] " if len(paths) > 1 else ""
        bar.update(p.done, p.total, f"{which}frame {p.frame + 1}/{p.frames}{rate}")

    try:
        results = dream_videos(
            [VideoJob(i, o) for i, o in zip(paths, outputs)], None, config, weights=flags.get("weights") or "pretrained",
            start=start_at, end=end_at, size=size, max_pixels=max_pixels, fps=fps, audio=not no_audio, force=force,
            resume=resume, keep_frames=keep_frames, batch_size=batch, progress=report,
            warn=lambda message: warn(message, quiet=quiet), on_network=load, **steering,
        )
    except VideoInterrupted as stop:
        bar.close()
        for result in stop.finished:
            click.echo(str(result.output))
        for kept in stop.kept:
            line = f"{kept.input}: {kept.made} of {kept.frames} frames are in {kept.store}"
            if kept.partial is not None:
                line += f"\n  partial video: {kept.partial}"
            elif kept.note:
                line += f" ({kept.note})"
            click.echo(line, err=True)
        click.echo("Interrupted. Run the same command with --resume to continue.", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        bar.close()
    if not quiet:
        for result in results:
            click.echo(str(result.output))
