"""`dreamer zoom`: infinite-zoom videos, several at once, resumable."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, DreamerError, UsageError
from . import main
from .common import (
    Source, check_targets, config_from_flags, dream_options, load_source, open_network, parse_sources,
    runtime_options, warn,
)
from .progress import ProgressLine, _fmt_seconds

KINDS = ("mp4", "gif", "webp", "frames")
_EXTENSIONS = {"mp4": ".mp4", "gif": ".gif", "webp": ".webp", "frames": ".frames"}
_MANIFEST_FORMAT = "dreamer zoom 1"
# recorded in the manifest, but a resumed run may change it: it does not change any frame
_FREE_ON_RESUME = ("fps",)


@dataclass(eq=False)
class _Plan:
    """One video of this call, as set up before any work."""

    where: str  # how to name this video in messages: its source, or jobs-file:line
    source: Source
    output: Path
    zoom: Any  # ZoomConfig
    seed: int
    index: int
    fps: float
    kind: str = ""
    store: Any = None  # FrameStore
    start: Any = None  # (1,3,H,W) tensor
    done: int = 0
    created: bool = False
    made: int = field(default=0)


def _located(where: str | None, exc: DreamerError) -> DreamerError:
    """The same kind of error, its message prefixed with `where` (a jobs file line)."""
    if where is None:
        return exc
    exc.message = f"{where}: {exc.message}"
    exc.args = (exc.message,)
    return exc


def _check_fps(fps: float) -> float:
    if not (math.isfinite(fps) and fps > 0):
        raise ConfigError("fps", fps, "a number of frames per second > 0, e.g. 30")
    return fps


def _stage_configs(flags: dict[str, Any], cycle_layers: tuple[str, ...], cycle_presets: tuple[str, ...],
                   quiet: bool):
    """The per-frame dream configs (one per cycle stage), the video seed and the preset, from the flags.

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
                raise ConfigError("cycle-layer", spec, "LAYER or LAYER+LAYER..., e.g. mixed3b or mixed4c:97+mixed5a=0.5")
            variants.append(dict(flags, layers=layers))
    elif cycle_presets:
        variants = [dict(flags, preset=name) for name in cycle_presets]
    else:
        variants = [flags]
    light = {"octaves": LIGHT_DREAM.octaves, "steps": LIGHT_DREAM.steps}
    configs = []
    preset = None
    for variant in variants:
        config, preset_n = config_from_flags(variant)
        preset = preset or preset_n
        changes = {k: v for k, v in light.items() if flags.get(k) is None}
        if config.param == "fft" and flags.get("param") is None:
            warn(f"preset {variant.get('preset')!r} uses --param fft, which grows a picture instead of "
                 "dreaming on one; zoom frames use --param pixel with its layers and classes", quiet=quiet)
            changes["param"] = "pixel"
        config = config.replace(**changes)
        check_targets(config)  # a typo in a layer or class is reported before the model loads
        configs.append(config)
    return tuple(configs), configs[0].seed, preset


def _default_output(source: Source, kind: str, folder: Path | None) -> Path:
    if folder is None:
        folder = source.path.parent if source.path is not None else Path.cwd()
    return folder / f"{source.stem}.zoom{_EXTENSIONS[kind]}"


def _outputs(sources: list[Source], output: Path | None, fmt: str | None) -> list[Path]:
    """Where each video of SOURCE... goes (checked for clashes; nothing is created yet
    except a missing -o folder for several sources)."""
    from ..io.video import output_kind

    if output is None:
        return [_default_output(s, fmt or "mp4", None) for s in sources]
    if len(sources) == 1 and not (output.is_dir() and fmt not in (None, "frames")):
        kind = output_kind(output)  # an unknown extension is a usage error here
        if fmt is not None and fmt != kind:
            raise UsageError(f"-o {output} is a {kind} output but --format {fmt} was given", hint="drop one of them")
        return [output]
    if output.suffix.lower() in (".mp4", ".gif", ".webp"):
        raise UsageError(
            f"-o {output} names one video but {len(sources)} sources were given",
            hint="with several sources, -o names a folder for the videos",
        )
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output} is a file; with several sources it must be a folder")
    if not output.exists() and output.parent.is_dir():
        try:
            output.mkdir()
        except OSError as exc:
            from ..errors import OutputError

            raise OutputError(f"cannot create the folder {str(output)!r}: {exc.strerror or exc}") from exc
    return [_default_output(s, fmt or "mp4", output) for s in sources]


def _probe_encoders(kinds: set[str]) -> None:
    """Encode a tiny clip of each video kind first, so a missing encoder library is found
    before the model loads and the frames are made (EncoderError names the package)."""
    import tempfile

    import numpy as np

    from ..io.video import encode

    with tempfile.TemporaryDirectory(prefix="dreamer-probe-") as tmp:
        for kind in sorted(kinds - {"frames"}):
            frames = [np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 255, np.uint8)]
            encode(frames, Path(tmp) / f"probe.{kind}", fps=10)


def _manifest(plan: _Plan, model: str, weights: str) -> dict[str, Any]:
    zoom = plan.zoom.to_dict()
    frames = zoom.pop("frames")
    h, w = plan.start.shape[-2:]
    data = {
        "format": _MANIFEST_FORMAT,
        "source": plan.source.text,
        "size": [int(h), int(w)],
        "seed": plan.seed,
        "video": plan.index,
        "model": model,
        "weights": weights,
        "zoom": zoom,
        "frames": frames,
        "fps": plan.fps,
    }
    return json.loads(json.dumps(data))  # as it will read back (tuples -> lists)


def _describe(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _differences(old: Any, new: Any, path: str) -> list[str]:
    """'path: was X, now Y' for each leaf where two JSON values differ (dreams[0].steps ...)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out.extend(_differences(old.get(key), new.get(key), f"{path}.{key}" if path else key))
        return out
    nested = any(isinstance(v, (dict, list)) for v in (old or []) + (new or [])) if isinstance(old, list) else False
    if nested and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{path}[{i}]")]
    return [f"{path}: was {_describe(old)}, now {_describe(new)}"]


def _resume_problem(old: dict[str, Any], new: dict[str, Any], done: int, ramped: bool) -> str | None:
    """Why a run recorded as `old` cannot be continued with settings `new` (None: it can)."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key in _FREE_ON_RESUME or key == "frames":
            continue
        # the zoom settings are named by their own keys (zoom, rotate ...), the rest by their path
        prefix = "" if key == "zoom" and isinstance(old.get(key), dict) else key
        diffs.extend(_differences(old.get(key), new.get(key), prefix))
    old_frames, new_frames = old.get("frames"), new["frames"]
    if old_frames != new_frames:
        if not isinstance(old_frames, int) or new_frames < old_frames or new_frames < done:
            diffs.append(f"frames: was {old_frames}, now {new_frames} (a video can be made longer, not shorter)")
        elif ramped:
            diffs.append(
                f"frames: was {old_frames}, now {new_frames} (with a START:END ramp every frame depends on "
                "the length; a longer video needs --force)"
            )
    return "; ".join(diffs) or None


def _prepare(plans: list[_Plan], *, force: bool, resume: bool, model: str, weights: str) -> None:
    """Create each video's frame store; with `resume`, check its settings and load its last frame.
    The manifests are written once every video has passed its checks."""
    from ..io.video import frame_store_path, prepare_output
    from ..zoom.feedback import frame_to_tensor

    manifests = []
    for plan in plans:
        existed = plan.output.exists() or frame_store_path(plan.output).exists()
        store = prepare_output(plan.output, force=force, resume=resume)
        plan.store = store
        plan.created = not existed
        manifest = _manifest(plan, model, weights)
        count = store.count() if resume else 0
        if resume and count == 0 and plan.kind != "frames" and plan.output.exists():
            raise UsageError(
                f"{plan.output} exists and there are no frames in {store.folder} to resume from "
                "(its run finished, or the frames were removed)",
                hint="use --force to make it again",
            )
        if count:
            old = store.read_manifest()
            if old is None or old.get("format") != _MANIFEST_FORMAT:
                raise UsageError(
                    f"cannot resume {plan.output}: {store.folder} holds frames but no dreamer zoom manifest, "
                    "so their settings are unknown",
                    hint="use --force to start over",
                )
            problem = _resume_problem(old, manifest, count, plan.zoom.ramped)
            if problem:
                raise UsageError(
                    f"cannot resume {plan.output}: the settings differ from the run that made its "
                    f"{count} frames: {problem}",
                    hint="run again with the first run's settings, or use --force to start over",
                )
            last = store.read(count - 1)
            if last.shape[:2] != tuple(plan.start.shape[-2:]):
                raise UsageError(
                    f"cannot resume {plan.output}: frame {count - 1} is {last.shape[1]}x{last.shape[0]}, "
                    f"but the source makes {plan.start.shape[-1]}x{plan.start.shape[-2]} frames",
                    hint="use --force to start over",
                )
            plan.start = frame_to_tensor(last)
            plan.done = min(count, plan.zoom.frames)
        manifests.append(manifest)
    for plan, manifest in zip(plans, manifests):
        plan.store.write_manifest(manifest)


def _cleanup_empty(plans: list[_Plan]) -> None:
    """Remove frame stores this call created and never wrote a frame into (failed before work)."""
    for plan in plans:
        if plan.store is not None and plan.created and plan.store.count() == 0:
            plan.store.clear()
            try:
                plan.store.folder.rmdir()
            except OSError:
                pass


def _finish(plan: _Plan, *, quiet: bool, keep_frames: bool) -> None:
    from ..io.video import encode

    encode(plan.store.paths(), plan.output, fps=plan.fps, kind=plan.kind)
    if plan.kind != "frames" and not keep_frames:
        plan.store.clear()
    if not quiet:
        click.echo(str(plan.output))


def _interrupted(plans: list[_Plan], finished: set[int], quiet: bool) -> None:
    """After Ctrl-C: a playable partial video of each unfinished one, and where its frames are."""
    from ..io.video import encode

    for i, plan in enumerate(plans):
        if i in finished or plan.store is None:
            continue
        count = plan.store.count()
        if count == 0:
            continue
        lines = [f"{plan.where}: {count} of {plan.zoom.frames} frames are in {plan.store.folder}"]
        if plan.kind != "frames":
            try:
                encode(plan.store.paths(), plan.output, fps=plan.fps, kind=plan.kind)
                lines.append(f"  partial video: {plan.output}")
            except DreamerError as exc:
                lines.append(f"  (no partial video: {exc})")
        click.echo("\n".join(lines), err=True)
    click.echo("Interrupted. Run the same command with --resume to continue.", err=True)


def _plans_from_sources(texts, flags, zoom_kwargs, cycle, output, fmt, fps, size, quiet) -> list[_Plan]:
    from ..zoom.feedback import ZoomConfig, frame_seed

    dreams, seed, preset = _stage_configs(flags, *cycle, quiet)
    if not texts and preset is not None and getattr(preset, "start", None):
        texts = [preset.start]
    if not texts:
        raise UsageError("no source given", hint="dreamer zoom photo.jpg (or noise:512x512), or --jobs FILE")
    sources = parse_sources(texts)
    zoom = ZoomConfig(dreams=dreams, **zoom_kwargs)
    outputs = _outputs(sources, output, fmt)
    plans = []
    for index, (src, out) in enumerate(zip(sources, outputs)):
        image = load_source(src, size=size, seed=frame_seed(seed, index, 0))
        plans.append(_Plan(src.text, src, out, zoom, seed, index, fps, start=image))
    return plans


def _plans_from_jobs(path: Path, flags, zoom_kwargs, cycle, fps, size, quiet) -> list[_Plan]:
    from ..zoom.jobs import parse_jobs
    from ..zoom.feedback import ZoomConfig, frame_seed, parse_ramp, parse_shift

    plans = []
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
            dreams, seed, _ = _stage_configs(job_flags, *cycle, quiet)
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
            (src,) = parse_sources([job.source])
            from ..io.video import output_kind

            output_kind(job.output)
            image = load_source(src, size=size, seed=frame_seed(seed, index, 0))
        except DreamerError as exc:
            raise _located(job.where, exc) from None
        plans.append(_Plan(job.where, src, job.output, zoom, seed, index, job.fps or fps, start=image))
    return plans


@main.command()
@click.argument("sources", nargs=-1, metavar="SOURCE...")
@click.option("--frames", "-n", type=int, help="Frames per video, the source being frame 0 [default 100].")
@click.option("--zoom", "zoom_text", metavar="Z|START:END",
              help="Zoom per frame, > 0 and <= 2 (>1 zooms in); START:END ramps linearly over the frames [default 1.05].")
@click.option("--rotate", "rotate_text", metavar="DEG|START:END",
              help="Rotation per frame in degrees, counter-clockwise; START:END ramps [default 0].")
@click.option("--shift", "shift_text", metavar="DX,DY", help="Shift per frame in pixels (x right, y down) [default 0,0].")
@click.option("--fps", type=float, help="Frames per second of the video [default 30].")
@click.option("--cycle-layer", multiple=True, metavar="LAYER[+LAYER...]",
              help="Cycle through layers, repeatable: each value is one stage (+ combines layers).")
@click.option("--cycle-preset", multiple=True, metavar="NAME|FILE", help="Cycle through presets, repeatable.")
@click.option("--cycle-every", type=int, help="Frames per cycle stage [default 50].")
@dream_options
@runtime_options
@click.option("--size", "-s", type=click.IntRange(min=1), help="Scale each source's longest side to N pixels first.")
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="Output: .mp4, .gif, .webp or a folder of PNG frames; a folder for several sources.")
@click.option("--format", "fmt", type=click.Choice(KINDS), help="Kind of video when -o does not say [default mp4].")
@click.option("--jobs", "jobs_file", type=click.Path(path_type=Path), metavar="FILE",
              help="Make the videos listed in FILE (SOURCE PRESET OUTPUT per line; see docs).")
@click.option("--batch-size", type=int, help="At most N same-size videos dreamed together [default all].")
@click.option("--keep-frames", is_flag=True, help="Keep the PNG frames beside a finished .mp4/.gif/.webp.")
@click.option("--force", "-f", is_flag=True, help="Overwrite existing outputs (and their frames).")
@click.option("--resume", "-r", is_flag=True, help="Continue an interrupted run from its last finished frame.")
def zoom(
    sources: tuple[str, ...], frames: int | None, zoom_text: str | None, rotate_text: str | None,
    shift_text: str | None, fps: float | None, cycle_layer: tuple[str, ...], cycle_preset: tuple[str, ...],
    cycle_every: int | None, size: int | None, output: Path | None, fmt: str | None, jobs_file: Path | None,
    batch_size: int | None, keep_frames: bool, force: bool, resume: bool, quiet: bool, **flags: Any,
) -> None:
    """Make infinite-zoom videos: dream a frame, zoom into it, dream again, ...

    SOURCE is an image file or noise:WIDTHxHEIGHT. Frame 0 of the video is the source;
    frame k+1 is a light dream (default 1 octave x 5 steps) of frame k zoomed (rotated,
    shifted) about the centre. Several sources, or a jobs file, load the model once and
    dream same-size videos together as one batch.

    \b
    Examples:
      dreamer zoom photo.jpg --frames 200 --zoom 1.04 -o photo.mp4
      dreamer zoom noise:512x512 --layer mixed4c:97 --rotate 0.5 -o spin.gif
      dreamer zoom photo.jpg --cycle-layer mixed3b --cycle-layer mixed4c --cycle-every 50
      dreamer zoom photo.jpg --zoom 1.01:1.08 --frames 300 --octaves 2 --steps 4
      dreamer zoom a.jpg b.jpg c.jpg -o videos/ --format gif
      dreamer zoom --jobs jobs.txt
      dreamer zoom photo.jpg -o photo.mp4 --resume     # after Ctrl-C
    """
    from ..zoom.feedback import ZoomConfig, parse_ramp, parse_shift

    if force and resume:
        raise UsageError("give --force or --resume, not both",
                         hint="--resume continues a run; --force starts it over")
    if batch_size is not None and batch_size < 1:
        raise ConfigError("batch-size", batch_size, "an integer >= 1")
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
    fps = _check_fps(30.0 if fps is None else fps)
    cycle = (cycle_layer, cycle_preset)

    if jobs_file is not None:
        if sources:
            raise UsageError("give SOURCE... or --jobs FILE, not both")
        if output is not None or fmt is not None:
            raise UsageError("-o and --format do not apply with --jobs: each job names its output")
        plans = _plans_from_jobs(jobs_file, flags, zoom_kwargs, cycle, fps, size, quiet)
    else:
        plans = _plans_from_sources(list(sources), flags, zoom_kwargs, cycle, output, fmt, fps, size, quiet)

    _check_plans(plans)
    models = {d.model for p in plans for d in p.zoom.dreams}
    if len(models) > 1:
        raise UsageError(f"one model per call, but the settings ask for {', '.join(sorted(models))}")
    model = models.pop()
    from ..models.weights import parse_weights

    weights = str(parse_weights(flags.get("weights") or "pretrained"))
    _probe_encoders({p.kind for p in plans})

    try:
        _prepare(plans, force=force, resume=resume, model=model, weights=weights)
        todo = [p for p in plans if p.done < p.zoom.frames]
        network = None
        if todo:
            network = open_network(model, flags.get("weights"), flags.get("device"), quiet=quiet)
            _check_sizes(todo, network, quiet)
    except BaseException:
        _cleanup_empty(plans)
        raise
    _run(plans, todo, network, batch_size=batch_size, quiet=quiet, keep_frames=keep_frames)


def _check_plans(plans: list[_Plan]) -> None:
    """Outputs: a known kind, distinct, never one of the sources."""
    from ..io.video import output_kind

    seen: dict[Path, str] = {}
    inputs = {p.source.path.resolve(): p.where for p in plans if p.source.path is not None}
    for plan in plans:
        plan.kind = output_kind(plan.output)
        key = plan.output.resolve()
        if key in seen:
            raise UsageError(
                f"{seen[key]} and {plan.where} would both be written to {plan.output}",
                hint="give them different outputs (sources with the same name need separate -o runs or a jobs file)",
            )
        seen[key] = plan.where
        if key in inputs:
            raise UsageError(f"{plan.output} would overwrite the source {inputs[key]}", hint="choose another output")


def _check_sizes(plans: list[_Plan], network, quiet: bool) -> None:
    """Every frame must be large enough for the network; warn when octaves have to be dropped."""
    from ..loops.deepdream import plan_octaves

    for plan in plans:
        h, w = plan.start.shape[-2:]
        for config in plan.zoom.dreams:
            try:
                octaves = plan_octaves((h, w), config.octaves, config.octave_scale, network.min_size)
            except DreamerError as exc:
                raise _located(plan.where, exc) from None
            if octaves.dropped:
                warn(f"{plan.where} ({w}x{h}) is too small for {config.octaves} octaves of scale "
                     f"{config.octave_scale:g}; using {len(octaves.sizes)}", quiet=quiet)


def _frame_metadata(plan: _Plan, index: int, network) -> dict[str, str]:
    from ..io.metadata import build_metadata
    from ..zoom.feedback import frame_seed

    config = plan.zoom.dream_at(index) if index > 0 else None
    return build_metadata(
        config, model=network.name if network else "", weights=network.weights if network else "",
        device=str(network.device) if network else "", source=plan.source.text,
        seed=frame_seed(plan.seed, plan.index, index), frame=index, video=plan.index,
        zoom=plan.zoom.feedback_at(index)[0] if index > 0 else None,
    )


def _run(plans: list[_Plan], todo: list[_Plan], network, *, batch_size, quiet: bool, keep_frames: bool) -> None:
    from ..zoom.feedback import ZoomVideo, zoom_frames

    finished: set[int] = set()
    for i, plan in enumerate(plans):
        if plan.done >= plan.zoom.frames:
            _finish(plan, quiet=quiet, keep_frames=keep_frames)
            finished.add(i)
    if not todo:
        return
    videos = [ZoomVideo(p.start, p.zoom, seed=p.seed, index=p.index, done=p.done) for p in todo]
    total = sum(p.zoom.frames - p.done for p in todo)
    label = f"zoom {todo[0].source.stem}" if len(plans) == 1 else f"zoom {len(todo)} videos"
    bar = ProgressLine(label, quiet=quiet)
    start = time.monotonic()
    made = 0
    try:
        for frame in zoom_frames(videos, network, batch_size=batch_size):
            plan = todo[frame.video]
            plan.store.write(frame.index, frame.image, _frame_metadata(plan, frame.index, network))
            plan.made += 1
            made += 1
            left = plan.zoom.frames - 1 - frame.index
            detail = f"frame {frame.index + 1}/{plan.zoom.frames}"
            if len(todo) > 1:
                eta = (time.monotonic() - start) / plan.made * left
                detail = f"[{plan.index + 1}] {plan.source.stem} {detail} (this video: {_fmt_seconds(eta)} left), all:"
            bar.update(made, total, detail)
            if left == 0:
                bar.close()
                _finish(plan, quiet=quiet, keep_frames=keep_frames)
                finished.add(next(n for n, p in enumerate(plans) if p is plan))
    except KeyboardInterrupt:
        bar.close()
        _interrupted(plans, finished, quiet)
        raise click.exceptions.Exit(130) from None
    except Exception:
        bar.close()
        for i, plan in enumerate(plans):
            if i not in finished and plan.store is not None and plan.store.count():
                click.echo(f"{plan.where}: {plan.store.count()} frames kept in {plan.store.folder}; "
                           "--resume continues", err=True)
        raise
    bar.close()
