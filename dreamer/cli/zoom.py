"""`dreamer zoom`: infinite-zoom videos, several at once, resumable.

Parse the flags -> dream and zoom configs -> a `dreamer.zoom.session.ZoomSession` (which owns
the files: locks, frame stores, resume, partial results) -> report. No file logic lives here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, DreamerError, UsageError
from . import main
from .common import (
    FiniteFloat, check_targets, config_from_flags, dream_options, load_source, max_pixels_option, open_network,
    option, parse_sources, runtime_options, size_option, warn,
)
from .controls import checked_dream, control_options, controls_from_flags
from .progress import ProgressLine, SteadyRate, _fmt_seconds
from .scale import ray_option

KINDS = ("mp4", "gif", "webp", "frames")
_EXTENSIONS = {"mp4": ".mp4", "gif": ".gif", "webp": ".webp", "frames": ".frames"}


def _located(where: str | None, exc: DreamerError) -> DreamerError:
    """The same kind of error, its message prefixed with `where` (a jobs file line)."""
    if where is None:
        return exc
    exc.message = f"{where}: {exc.message}"
    exc.args = (exc.message,)
    return exc


def _stage_configs(flags: dict[str, Any], cycle_layers: tuple[str, ...], cycle_presets: tuple[str, ...],
                   quiet: bool):
    """The per-frame dream configs (one per cycle stage), the video seed, the preset and each
    stage's preset name, from the flags.

    Each stage resolves default < preset < flags like `dreamer run`, except that octaves and
    steps come from the light zoom defaults unless --octaves/--steps are given: a still-image
    preset's full dream on every frame would make a video many times slower. A preset's fft
    parameterisation (which grows an image rather than dreaming on one) becomes pixel.
    """
    from ..zoom.feedback import LIGHT_DREAM

    variants: list[dict[str, Any]]
    if cycle_layers and cycle_presets:
        raise UsageError("give --cycle-layer or --cycle-preset, not both")
    if cycle_presets and flags.get("preset"):
        raise UsageError("give --preset or --cycle-preset, not both", hint="list every preset with --cycle-preset")
    if cycle_layers:
        variants = []
        for spec in cycle_layers:
            layers = tuple(s.strip() for s in spec.split("+"))
            if not all(layers):
                raise UsageError(f"invalid --cycle-layer: {spec!r} "
                                 "(LAYER or LAYER+LAYER..., e.g. mixed3b or mixed4c:97+mixed5a=0.5)")
            variants.append(dict(flags, layers=layers))
    elif cycle_presets:
        variants = [dict(flags, preset=name) for name in cycle_presets]
    else:
        variants = [flags]
    light = {"octaves": LIGHT_DREAM.octaves, "steps": LIGHT_DREAM.steps}
    configs = []
    names: list[str | None] = []
    preset = None
    for variant in variants:
        config, preset_n = config_from_flags(variant)
        preset = preset or preset_n
        names.append(preset_n.name if preset_n is not None else None)
        changes = {k: v for k, v in light.items() if flags.get(k) is None}
        if config.param == "fft" and flags.get("param") is None:
            warn(f"preset {variant.get('preset')!r} uses --param fft, which grows a picture instead of "
                 "dreaming on one; zoom frames use --param pixel with its layers and classes", quiet=quiet)
            config = config.classic()
        config = config.replace(**changes)
        check_targets(config)  # a typo in a layer or class is reported before the model loads
        configs.append(config)
    return tuple(configs), configs[0].seed, preset, tuple(names)


def _outputs(sources, output: str | None, fmt: str | None) -> list[Path]:
    """Where each video of SOURCE... goes (nothing is created yet except a missing -o folder
    for several sources, or for `-o DIR/`)."""
    from ..io.video import output_kind

    def default(source, folder: Path | None) -> Path:
        if folder is None:
            folder = source.path.parent if source.path is not None else Path.cwd()
        return folder / f"{source.stem}.zoom{_EXTENSIONS[fmt or 'mp4']}"

    if output is None:
        return [default(s, None) for s in sources]
    text = str(output)
    if not text.strip():
        raise UsageError("-o needs a file or folder name", hint="e.g. -o zoom.mp4, or -o videos/")
    path = Path(text).expanduser()
    wants_folder = text.endswith(("/", "\\")) and fmt != "frames"
    if len(sources) == 1 and not wants_folder and not (path.is_dir() and fmt not in (None, "frames")):
        kind = output_kind(path)  # an unknown extension is a usage error here
        if fmt is not None and fmt != kind:
            raise UsageError(f"-o {path} is a {kind} output but --format {fmt} was given", hint="drop one of them")
        return [path]
    if len(sources) > 1 and path.suffix.lower() in (".mp4", ".gif", ".webp"):
        raise UsageError(
            f"-o {path} names one video but {len(sources)} sources were given",
            hint="with several sources, -o names a folder for the videos",
        )
    if path.exists() and not path.is_dir():
        raise UsageError(f"-o {path} is a file; it must be a folder for the videos")
    if not path.exists() and path.parent.is_dir():
        from ..io.atomic import check_name, os_error_message

        check_name(path, what="output folder")
        try:
            path.mkdir()
        except OSError as exc:
            from ..errors import OutputError

            raise OutputError(os_error_message(path, exc)) from exc
    return [default(s, path) for s in sources]


def _jobs_from_sources(texts, flags, zoom_kwargs, cycle, output, fmt, fps, size, max_pixels, quiet):
    from ..zoom.feedback import ZoomConfig, frame_seed
    from ..zoom.session import ZoomJob

    dreams, seed, preset, presets = _stage_configs(flags, *cycle, quiet)
    if not texts and preset is not None and getattr(preset, "start", None):
        texts = [preset.start]
    if not texts:
        raise UsageError("no source given", hint="dreamer zoom photo.jpg (or noise:512x512), or --jobs FILE")
    sources = parse_sources(texts, size=size, max_pixels=max_pixels)
    zoom = ZoomConfig(dreams=dreams, **zoom_kwargs)
    outputs = _outputs(sources, output, fmt)
    jobs = []
    for index, (src, out) in enumerate(zip(sources, outputs)):
        image = load_source(src, size=size, seed=frame_seed(seed, index, 0), max_pixels=max_pixels)
        jobs.append(ZoomJob(image, out, zoom, seed=seed, index=index, fps=fps, source=src.text,
                            source_path=src.path, name=src.text, presets=presets))
    return jobs


def _jobs_from_file(path: Path, flags, zoom_kwargs, cycle, fps, size, max_pixels, quiet):
    from ..io.video import check_fps, output_kind
    from ..zoom.feedback import ZoomConfig, frame_seed, parse_ramp, parse_shift
    from ..zoom.jobs import parse_jobs
    from ..zoom.session import ZoomJob

    jobs = []
    for index, job in enumerate(parse_jobs(path)):
        try:
            job_flags = dict(flags)
            if job.preset is not None:
                if cycle[1]:
                    raise UsageError("a job's preset and --cycle-preset cannot be combined")
                job_flags["preset"] = job.preset
            if job.layers or job.classes:
                job_flags["layers"], job_flags["classes"] = job.layers, job.classes
            if job.seed is not None:
                job_flags["seed"] = job.seed
            dreams, seed, _, presets = _stage_configs(job_flags, *cycle, quiet)
            kwargs = dict(zoom_kwargs)
            if job.frames is not None:
                kwargs["frames"] = job.frames
            if job.zoom is not None:
                kwargs["zoom"] = parse_ramp("zoom", job.zoom)
            if job.rotate is not None:
                kwargs["rotate"] = parse_ramp("rotate", job.rotate)
            if job.shift is not None:
                kwargs["shift"] = parse_shift(job.shift)
            zoom = ZoomConfig(dreams=dreams, **kwargs)
            (src,) = parse_sources([job.source], size=size, max_pixels=max_pixels)
            output_kind(job.output)
            image = load_source(src, size=size, seed=frame_seed(seed, index, 0), max_pixels=max_pixels)
            jobs.append(ZoomJob(image, job.output, zoom, seed=seed, index=index, fps=check_fps(job.fps or fps),
                                source=src.text, source_path=src.path, name=job.where, presets=presets))
        except DreamerError as exc:
            raise _located(job.where, exc) from None
    return jobs


@main.command()
@click.argument("sources", nargs=-1, metavar="SOURCE...")
@option("--frames", "-n", type=int, metavar="N", show_default="100",
        help="Frames per video, the source being frame 0.")
@option("--zoom", "zoom_text", metavar="Z|START:END", show_default="1.05",
        help="Zoom per frame, > 0 and <= 2 (>1 zooms in); START:END ramps linearly over the frames.")
@option("--rotate", "rotate_text", metavar="DEG|START:END", show_default="0",
        help="Rotation per frame in degrees, counter-clockwise; START:END ramps.")
@option("--shift", "shift_text", metavar="DX,DY", show_default="0,0", help="Shift per frame in pixels (x right, y down).")
@option("--fps", type=FiniteFloat(min=0.01, max=1000.0), metavar="FPS", show_default="30",
        help="Frames per second of the video.")
@option("--cycle-layer", multiple=True, metavar="LAYER[+LAYER...]",
        help="Cycle through layers, repeatable: each value is one stage (+ combines layers).")
@option("--cycle-preset", multiple=True, metavar="NAME|FILE", help="Cycle through presets, repeatable.")
@option("--cycle-every", type=int, metavar="N", show_default="50", help="Frames per cycle stage.")
@dream_options(octaves=1, steps=5)
@control_options
@runtime_options
@size_option()
@max_pixels_option
@option("--output", "-o", type=click.Path(), metavar="PATH",
        help="Output: .mp4, .gif, .webp or a folder of PNG frames; a folder for several sources.")
@option("--format", "fmt", type=click.Choice(KINDS), show_default="mp4", help="Kind of video when -o does not say.")
@option("--jobs", "jobs_file", type=click.Path(path_type=Path), metavar="FILE",
        help="Make the videos listed in FILE (SOURCE PRESET OUTPUT per line; see docs).")
@option("--batch", type=int, metavar="N", show_default="all", help="At most N same-size videos dreamed together.")
@option("--keep-frames", is_flag=True, help="Keep the PNG frames beside a finished .mp4/.gif/.webp.")
@option("--force", "-f", is_flag=True,
        help="Replace an existing output that you named, and dreamer's own frames (never other files).")
@option("--resume", "-r", is_flag=True, help="Continue an interrupted run from its last finished frame.")
@ray_option
def zoom(
    sources: tuple[str, ...], frames: int | None, zoom_text: str | None, rotate_text: str | None,
    shift_text: str | None, fps: float | None, cycle_layer: tuple[str, ...], cycle_preset: tuple[str, ...],
    cycle_every: int | None, size: int | None, max_pixels: int | None, output: str | None, fmt: str | None,
    jobs_file: Path | None, batch: int | None, keep_frames: bool, force: bool, resume: bool, quiet: bool,
    ray_address: str | None, **flags: Any,
) -> None:
    """Make infinite-zoom videos: dream a frame, zoom into it, dream again, ...

    SOURCE is an image file or noise:WIDTHxHEIGHT. Frame 0 of the video is the source;
    frame k+1 is a light dream (default 1 octave x 5 steps) of frame k zoomed (rotated,
    shifted) about the centre. Several sources, or a jobs file, load the model once and
    dream same-size videos together as one batch.

    Frames are stored as they are made (OUT.frames/), so Ctrl-C loses nothing: it writes
    the frames so far as OUT.partial.mp4 beside the output (which is left as it was) and
    --resume continues. Files dreamer did not write are never overwritten or deleted.

    \b
    Examples:
      dreamer zoom photo.jpg --frames 200 --zoom 1.04 -o photo.mp4
      dreamer zoom noise:512x512 --layer mixed4c:97 --rotate 0.5 -o spin.gif
      dreamer zoom photo.jpg --cycle-layer mixed3b --cycle-layer mixed4c --cycle-every 50
      dreamer zoom photo.jpg --zoom 1.01:1.08 --frames 300 --octaves 2 --steps 4
      dreamer zoom photo.jpg --mask sky.png --keep-colors --guide flowers.jpg
      dreamer zoom a.jpg b.jpg c.jpg -o videos/ --format gif
      dreamer zoom --jobs jobs.txt
      dreamer zoom photo.jpg -o photo.mp4 --resume     # after Ctrl-C
      dreamer zoom --jobs jobs.txt --ray               # on a Ray cluster (docs/scale.md)
    """
    from ..io.video import check_fps
    from ..zoom.feedback import ZoomConfig, parse_ramp, parse_shift

    # guide and mask images are read now, before anything else (each frame is steered alike)
    controls = controls_from_flags(flags, max_pixels=max_pixels)[0]

    if force and resume:
        raise UsageError("give --force or --resume, not both",
                         hint="--resume continues a run; --force starts it over")
    if batch is not None and batch < 1:
        raise ConfigError("batch", batch, "an integer >= 1")
    if (cycle_layer or cycle_preset) and cycle_every is None:
        cycle_every = 50
    if cycle_every is not None and not (cycle_layer or cycle_preset):
        warn("--cycle-every does nothing without --cycle-layer or --cycle-preset", quiet=quiet)
    zoom_kwargs: dict[str, Any] = {}
    if frames is not None:
        zoom_kwargs["frames"] = frames
    if zoom_text is not None:
        zoom_kwargs["zoom"] = parse_ramp("zoom", zoom_text)
    if rotate_text is not None:
        zoom_kwargs["rotate"] = parse_ramp("rotate", rotate_text)
    if shift_text is not None:
        zoom_kwargs["shift"] = parse_shift(shift_text)
    if cycle_every is not None:
        zoom_kwargs["cycle_every"] = cycle_every
    ZoomConfig(**zoom_kwargs)  # bad values are reported before anything else happens
    fps = check_fps(30.0 if fps is None else fps)
    cycle = (cycle_layer, cycle_preset)

    if jobs_file is not None:
        if sources:
            raise UsageError("give SOURCE... or --jobs FILE, not both")
        if output is not None or fmt is not None:
            raise UsageError("-o and --format do not apply with --jobs: each job names its output")
        jobs = _jobs_from_file(jobs_file, flags, zoom_kwargs, cycle, fps, size, max_pixels, quiet)
    else:
        jobs = _jobs_from_sources(list(sources), flags, zoom_kwargs, cycle, output, fmt, fps, size, max_pixels,
                                  quiet)

    models = {d.model for j in jobs for d in j.config.dreams}
    if len(models) > 1:
        raise UsageError(f"one model per call, but the settings ask for {', '.join(sorted(models))}")
    model = models.pop()
    from ..steer import check_controls

    for job in jobs:
        for dream_config in job.config.dreams:
            check_controls(dream_config, controls)
    from ..models.weights import parse_weights
    from ..zoom.session import ZoomSession

    weights = str(parse_weights(flags.get("weights") or "pretrained"))
    mode = "resume" if resume else "force" if force else "new"
    with ZoomSession(jobs, model=model, weights=weights, mode=mode, keep_frames=keep_frames,
                     controls=controls.to_dict()) as session:
        if ray_address is not None and session.todo:
            from .scale import zoom_on_ray

            zoom_on_ray(session, ray_address, weights=flags.get("weights"), device=flags.get("device"), batch=batch,
                        quiet=quiet, dream=checked_dream(controls), report_unfinished=_report_unfinished)
            return
        network = None
        if session.todo:
            network = open_network(model, flags.get("weights"), flags.get("device"), quiet=quiet)
            for message in session.size_warnings(network):
                warn(message, quiet=quiet)
        _run(session, network, batch=batch, quiet=quiet, controls=controls)


def _run(session, network, *, batch: int | None, quiet: bool, controls=None) -> None:
    """Run the session with a progress line, and say what happened (also after Ctrl-C)."""
    videos = session.videos
    todo = session.todo
    total = sum(v.frames - v.done for v in todo)
    label = f"zoom {todo[0].job.source or todo[0].name}" if len(videos) == 1 and todo else f"zoom {len(todo)} videos"
    bar = ProgressLine(label, quiet=quiet)
    rates: dict[int, SteadyRate] = {}
    made = 0

    def on_event(event) -> None:
        nonlocal made
        video = event.video
        if event.kind == "frame":
            made += 1
            rate = rates.setdefault(id(video), SteadyRate())
            rate.update(video.made)
            detail = f"frame {event.frame + 1}/{video.frames}"
            if len(todo) > 1:
                eta = rate.eta(video.made, video.frames - video.done)
                left = "ETA ..." if eta is None else f"{_fmt_seconds(eta)} left"
                detail = f"[{video.job.index + 1}] {video.name} {detail} (this video: {left}), all:"
            bar.update(made, total, detail)
        elif event.kind == "finished":
            bar.close()
            if not quiet:
                click.echo(str(video.output))

    try:
        with _sigterm_as_interrupt() as stop:
            session.run(network, batch_size=batch, on_event=on_event, dream=checked_dream(controls))
    except KeyboardInterrupt:
        bar.close()
        _report_unfinished(session)
        what = "Terminated" if stop["terminated"] else "Interrupted"
        click.echo(f"{what}. Run the same command with --resume to continue.", err=True)
        raise click.exceptions.Exit(143 if stop["terminated"] else 130) from None
    except BaseException:
        bar.close()
        _report_unfinished(session, hint="--resume continues")
        raise
    bar.close()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (`kill`, `timeout`, a job scheduler stopping the run) stops a zoom like Ctrl-C:
    the frames are kept, partial videos written, the locks released; exit 143 then."""
    import signal
    import threading

    stop = {"terminated": False}
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        stop["terminated"] = True
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        yield stop
        return
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report_unfinished(session, hint: str | None = None) -> None:
    for video in session.videos:
        if video.finished or not video.note:
            continue
        lines = [f"{video.name}: {video.note}" + (f"; {hint}" if hint else "")]
        if video.partial_written is not None:
            lines.append(f"  partial video: {video.partial_written} (the output {video.output} is unchanged)"
                         if video.output.exists() else f"  partial video: {video.partial_written}")
        click.echo("\n".join(lines), err=True)
