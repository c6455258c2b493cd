"""Dreaming video files: paths in, paths out, resumable, interruptible. Library code: no
printing (progress and warnings go to callbacks), no click.

One call dreams one or more input videos (`dream_videos`; `dream_video` for one). For each:

1. Before any work: probe the input (`dreamer.io.video_in`), select the frames (`--start`,
   `--end`), choose the working size, check the output (never an input, never overwritten
   without `force`), and with `resume` check that the recorded settings are the same.
2. Frames are decoded, resized and paired with their optical flow in a background thread
   per video, dreamed (same-size videos as one batch per frame step), then written as PNGs
   into the frame store by a writer thread and fed to the video encoder as they come, so
   the network sets the pace.
3. When a video's last frame is made, the encoder finishes, the input's audio is copied
   into an MP4 (`dreamer.io.audio`), the result replaces the output in one rename, and the
   frame store is removed (unless `keep_frames`).

Ctrl-C (or any failure after frames were made) keeps the frame store and writes a playable
``NAME.partial.EXT`` beside the output; `resume` continues from the last stored frame and
gives the same video as an uninterrupted run. The frame store holds ``manifest.json``, the
settings a resumed run must match.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DreamerError, OutputError, OutputExistsError, UsageError
from .frames import VideoConfig, VideoInput, dream_streams, with_motion
from .prefetch import Prefetch, Worker
from .source import TimePoint, frame_range, parse_time, working_size

__all__ = [
    "MANIFEST_FORMAT",
    "PARTIAL_TAG",
    "VideoJob",
    "VideoProgress",
    "VideoResult",
    "VideoInterrupted",
    "partial_path",
    "default_output",
    "dream_videos",
    "dream_video",
]

MANIFEST_FORMAT = "dreamer video 1"
#: ``clip.dream.mp4`` interrupted -> ``clip.dream.partial.mp4``
PARTIAL_TAG = ".partial"
# recorded, but a resumed run may change them: they change no frame
_FREE_ON_RESUME = ("audio", "partial")


@dataclass(frozen=True)
class VideoJob:
    """One input video (a file or a folder of numbered frames) and where its dream goes
    (.mp4, .gif, .webp or a folder of PNG frames)."""

    input: Path
    output: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        object.__setattr__(self, "output", Path(self.output))


@dataclass(frozen=True)
class VideoProgress:
    """After each dreamed frame: ``done`` of ``total`` frames of this call are made; the last was
    frame ``frame`` of ``frames`` of job ``video``. ``rate`` is frames per second and ``eta``
    the seconds left, both measured after the first frame (which includes warm-up), None
    until a second frame is made."""

    done: int
    total: int
    video: int
    frame: int
    frames: int
    elapsed: float
    rate: float | None
    eta: float | None


@dataclass(frozen=True)
class VideoResult:
    """A finished video: ``output``, its ``frames`` at ``fps``; ``audio`` says what became of the
    input's sound ("copied", "re-encoded (aac)", "none" (the input has none), "dropped");
    ``resumed`` frames came from an earlier run."""

    output: Path
    frames: int
    fps: Fraction
    size: tuple[int, int]
    audio: str
    resumed: int = 0


class VideoInterrupted(KeyboardInterrupt):
    """Ctrl-C during `dream_videos`: what was kept. ``kept`` lists, per unfinished job,
    (input, frames made, frames asked for, partial video or None, frame store folder)."""

    def __init__(self, kept: list[tuple[Path, int, int, Path | None, Path]], finished: list[VideoResult]) -> None:
        super().__init__("interrupted")
        self.kept = kept
        self.finished = finished


def partial_path(output: Path) -> Path:
    """Where an interrupted run's playable video goes: ``clip.dream.mp4`` -> ``clip.dream.partial.mp4``."""
    output = Path(output)
    return output.with_name(f"{output.stem}{PARTIAL_TAG}{output.suffix}")


def default_output(input: Path, kind: str = "mp4", folder: Path | None = None) -> Path:
    """``clip.mov`` -> ``clip.dream.mp4`` beside it (or in `folder`); a frame folder ``shots/``
    -> ``shots.dream.mp4`` beside the folder. `kind` "frames" gives ``clip.dream.frames``."""
    input = Path(input)
    name = input.name if input.is_dir() else input.stem
    ext = ".frames" if kind == "frames" else f".{kind}"
    return (folder if folder is not None else input.absolute().parent) / f"{name}.dream{ext}"


# --- planning ------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Plan:
    number: int  # position in the call (also the video index that seeds its frames)
    job: VideoJob
    info: Any  # VideoInfo
    first: int
    stop: int
    size: tuple[int, int]
    kind: str
    audio: bool  # copy the input's audio into the output
    store: Any = None  # FrameStore
    created: bool = False
    done: int = 0
    previous_input: np.ndarray | None = None
    previous_dream: np.ndarray | None = None
    partial_ours: bool = False
    encoder: Any = None  # _Encoding
    prefetch: Any = None
    finished: VideoResult | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.stop - self.first

    @property
    def fps(self) -> Fraction:
        return self.info.fps


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.absolute() == b.absolute()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _check_paths(plans: list[_Plan]) -> None:
    """Outputs are distinct and never an input, nor the folder of one, nor inside one."""
    from ..io.video import frame_store_path

    seen: dict[Path, Path] = {}
    inputs = [p.job.input for p in plans]
    for plan in plans:
        out = plan.job.output
        store = frame_store_path(out)
        for path in (out, store, partial_path(out)):
            for source in inputs:
                if _same(path, source) or (source.is_dir() and _inside(path, source)) or (
                        path.exists() and path.is_dir() and _inside(source, path)):
                    raise OutputExistsError(
                        f"{out} would overwrite the input {source}" + ("" if path == out else f" (through {path})"),
                        hint="choose another output",
                    )
        key = out.absolute()
        if key in seen:
            raise UsageError(f"{seen[key]} and {plan.job.input} would both be written to {out}",
                             hint="give them different outputs")
        seen[key] = plan.job.input


def _plan(number: int, job: VideoJob, *, fps, start, end, size, max_pixels, audio, warn) -> _Plan:
    from ..io.images import DEFAULT_MAX_PIXELS
    from ..io.video import output_kind
    from ..io.video_in import probe_video

    info = probe_video(job.input, fps=fps)
    name = str(job.input)
    if info.variable_rate and fps is None:
        lo, hi = info.intervals
        warn(f"{name} has a variable frame rate (frames {lo * 1000:.0f} to {hi * 1000:.0f} ms apart); it is "
             f"dreamed at a constant {float(info.fps):g} fps, repeating or skipping frames to keep the timing")
    first, stop, clipped = frame_range(info.frames, info.fps, start, end, name=name)
    if clipped:
        warn(f"--end {end.text} is after the end of {name} ({info.duration:.2f}s); dreaming to its end")
    work = working_size(info.size, size=size, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, name=name)
    kind = output_kind(job.output)
    keep_audio = False
    if info.audio is not None:
        if not audio:
            pass
        elif kind == "mp4":
            keep_audio = True
        else:
            warn(f"{name} has sound, but a {'frame folder' if kind == 'frames' else kind.upper()} cannot hold it: "
                 "the audio is dropped (write an .mp4 to keep it)")
    return _Plan(number, job, info, first, stop, work, kind, keep_audio)


def _manifest(plan: _Plan, config: VideoConfig, model: str, weights: str) -> dict[str, Any]:
    data = {
        "format": MANIFEST_FORMAT,
        "input": str(plan.job.input.absolute()),
        "input_video": plan.info.fingerprint(),
        "frames": [plan.first, plan.stop],
        "fps": str(plan.fps),
        "size": list(plan.size),
        "video": plan.number,
        "model": model,
        "weights": weights,
        "config": config.to_dict(),
        "audio": plan.audio,
        "partial": None,
    }
    return json.loads(json.dumps(data))


def _describe(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """'path: was X, now Y' for each leaf where two JSON values differ (config.dream.steps ...)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out.extend(_differences(old.get(key), new.get(key), f"{path}.{key}" if path else key))
        return out
    return [f"{path}: was {_describe(old)}, now {_describe(new)}"]


def _prepare(plan: _Plan, *, force: bool, resume: bool) -> None:
    """Create the plan's frame store (checked writable); with `resume`, check its manifest and
    load the state the next frame continues from."""
    from ..io.video import frame_store_path, prepare_output

    store_folder = frame_store_path(plan.job.output)
    existed = plan.job.output.exists() or store_folder.exists()
    old_partial = False
    if existed:
        from ..io.video import FrameStore

        try:
            old = FrameStore(store_folder).read_manifest() if store_folder.is_dir() else None
        except DreamerError:
            old = None
        old_partial = bool(old and old.get("format") == MANIFEST_FORMAT and old.get("partial"))
    partial = partial_path(plan.job.output)
    plan.store = prepare_output(plan.job.output, force=force, resume=resume)
    plan.created = not existed
    plan.partial_ours = old_partial
    count = min(plan.store.count(), plan.frames) if resume else 0
    if resume and count == 0 and plan.kind != "frames" and plan.job.output.exists():
        raise UsageError(
            f"{plan.job.output} exists and there are no frames in {plan.store.folder} to resume from "
            "(its run finished, or the frames were removed)",
            hint="use --force to make it again",
        )
    if count:
        old = plan.store.read_manifest()
        if old is None or old.get("format") != MANIFEST_FORMAT:
            raise UsageError(
                f"cannot resume {plan.job.output}: {plan.store.folder} holds frames but no dreamer video "
                "manifest, so their settings are unknown",
                hint="use --force to start over",
            )
        new = plan.manifest
        diffs = [d for key in sorted(set(old) | set(new)) if key not in _FREE_ON_RESUME
                 for d in _differences(old.get(key), new.get(key), key)]
        if diffs:
            raise UsageError(
                f"cannot resume {plan.job.output}: the settings differ from the run that made its {count} "
                f"frames: {'; '.join(diffs)}",
                hint="run again with the first run's settings, or use --force to start over",
            )
        last = plan.store.read(count - 1)
        if last.shape[:2] != plan.size:
            raise UsageError(f"cannot resume {plan.job.output}: frame {count - 1} is {last.shape[1]}x{last.shape[0]}, "
                             f"not {plan.size[1]}x{plan.size[0]}", hint="use --force to start over")
        plan.done = count
        plan.previous_dream = last
        plan.partial_ours = plan.partial_ours or bool(old.get("partial"))
    plan.manifest["partial"] = partial.name if plan.partial_ours else None


def _cleanup_unused(plans: list[_Plan]) -> None:
    """Remove frame stores this call created and never wrote a frame into."""
    for plan in plans:
        if plan.store is not None and plan.created and plan.store.count() == 0:
            plan.store.clear()
            try:
                plan.store.folder.rmdir()
            except OSError:
                pass


# --- encoding in the background ------------------------------------------------------------------


class _Aborted(Exception):
    """Raised inside the encoder's frame iterator to abandon the file (never reaches a user)."""


class _Encoding:
    """Encodes a video in a thread from frames handed over one by one (after `stored` ones)."""

    _END = object()
    _ABORT = object()

    def __init__(self, target: Path, *, fps: Fraction, kind: str, stored: Sequence[Path]) -> None:
        import queue

        self.target = target
        self._queue: Any = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fps, kind, list(stored)),
                                         name="dreamer-encoder", daemon=True)
        self._thread.start()

    def _frames(self, stored: list[Path]) -> Iterator[Any]:
        yield from stored
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if item is self._ABORT:
                raise _Aborted
            yield item

    def _run(self, fps: Fraction, kind: str, stored: list[Path]) -> None:
        from ..io.video import encode

        try:
            encode(self._frames(stored), self.target, fps=float(fps), kind=kind)
        except _Aborted:
            pass
        except BaseException as exc:  # noqa: BLE001  (raised again in the dreaming thread)
            self._error = exc
            self._drain()

    def _drain(self) -> None:
        import queue

        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def add(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        while self._thread.is_alive():
            try:
                self._queue.put(frame, timeout=0.1)
                return
            except Exception:  # queue.Full
                continue
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._END)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        if self._thread.is_alive():
            self._drain()
            try:
                self._queue.put_nowait(self._ABORT)
            except Exception:  # full again: the thread is busy encoding; drain and retry
                self._drain()
                self._queue.put(self._ABORT)
            self._thread.join()


# --- the run -------------------------------------------------------------------------------------


def _video_temp(plan: _Plan) -> Path:
    """A hidden video-only file in the frame store (removed with it) before audio is added."""
    return plan.store.folder / f".tmp-video-{uuid.uuid4().hex[:8]}.mp4"


def _encoder_target(plan: _Plan) -> Path:
    return _video_temp(plan) if plan.audio else plan.job.output


def _write_video(plan: _Plan, frames: Sequence[Any], output: Path, count: int) -> str:
    """Encode `frames` (paths or arrays) into `output` with the plan's audio cut to `count`
    frames; returns what became of the audio. The file appears complete or not at all."""
    from ..io.video import encode

    if not plan.audio:
        encode(frames, output, fps=float(plan.fps), kind=plan.kind)
        return "dropped" if plan.info.audio is not None else "none"
    temp = _video_temp(plan)
    try:
        encode(frames, temp, fps=float(plan.fps), kind=plan.kind)
        return _mux(plan, temp, output, count)
    finally:
        _unlink(temp)


def _mux(plan: _Plan, video: Path, output: Path, count: int) -> str:
    from ..io.audio import add_audio

    info = plan.info
    begin = info.start_time + plan.first / float(plan.fps)
    whole = plan.first == 0 and plan.first + count >= info.frames
    end = None if whole else info.start_time + (plan.first + count) / float(plan.fps)
    return add_audio(video, info.path, output, audio_index=info.audio.index, begin=begin, end=end)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _frame_metadata(plan: _Plan, index: int, config: VideoConfig, network) -> dict[str, str]:
    from ..io.metadata import build_metadata
    from ..zoom.feedback import frame_seed

    return build_metadata(
        config.dream, model=network.name, weights=network.weights, device=str(network.device),
        source=str(plan.job.input), seed=frame_seed(config.seed, plan.number, index), frame=index,
        video=plan.number, source_frame=plan.first + index, flow=config.flow, blend=config.blend,
    )


def _inputs(plan: _Plan, config: VideoConfig) -> VideoInput:
    """The plan's frames from `done` on, decoded and paired with their motion in a thread."""
    from ..io.video_in import read_frames

    method = config.flow if config.uses_flow else "none"
    begin = plan.first + max(plan.done - 1, 0)
    frames = read_frames(plan.info, begin, plan.stop, size=plan.size)
    previous = None
    if plan.done:
        previous = next(frames)  # input frame done-1: the flow of frame `done` starts from it
        plan.previous_input = previous
    plan.prefetch = Prefetch(with_motion(frames, method, previous if config.blend > 0 else None),
                             depth=4, name=f"dreamer-video-{plan.number}")
    state = (previous, plan.previous_dream) if plan.done else None
    return VideoInput(plan.prefetch, seed=config.seed, index=plan.number, done=plan.done, previous=state,
                      motion_ready=True)


def _finish(plan: _Plan, *, keep_frames: bool) -> VideoResult:
    """The last frame is stored: complete the output and tidy up."""
    audio = "dropped" if plan.info.audio is not None else "none"
    if plan.kind != "frames":
        plan.encoder.finish()
        if plan.audio:
            try:
                audio = _mux(plan, plan.encoder.target, plan.job.output, plan.frames)
            finally:
                _unlink(plan.encoder.target)
    partial = partial_path(plan.job.output)
    if plan.partial_ours:
        _unlink(partial)
    if plan.kind != "frames" and not keep_frames:
        plan.store.clear()
    elif plan.manifest.get("partial"):
        plan.manifest["partial"] = None
        plan.store.write_manifest(plan.manifest)
    return VideoResult(plan.job.output, plan.frames, plan.fps, plan.size, audio, resumed=plan.done)


def _keep_partial(plan: _Plan) -> Path | None:
    """After an interruption: a playable video of the frames made so far, beside the output."""
    count = plan.store.count() if plan.store is not None else 0
    if plan.kind == "frames" or count == 0:
        return None
    partial = partial_path(plan.job.output)
    if partial.exists() and not plan.partial_ours:
        return None  # not ours to replace
    plan.manifest["partial"] = partial.name
    plan.store.write_manifest(plan.manifest)  # recorded first: the file is ours to replace later
    _write_video(plan, plan.store.paths()[: plan.frames], partial, min(count, plan.frames))
    plan.partial_ours = True
    return partial


def dream_videos(
    jobs: Sequence[VideoJob | tuple[Any, Any]],
    network=None,
    config: VideoConfig | None = None,
    *,
    model: str | None = None,
    weights: str = "pretrained",
    device: str = "auto",
    start: TimePoint | str | None = None,
    end: TimePoint | str | None = None,
    size: int | None = None,
    max_pixels: int | None = None,
    fps: float | None = None,
    audio: bool = True,
    force: bool = False,
    resume: bool = False,
    keep_frames: bool = False,
    batch_size: int | None = None,
    progress: Callable[[VideoProgress], None] | None = None,
    warn: Callable[[str], None] | None = None,
    on_network: Callable[[], Any] | None = None,
) -> list[VideoResult]:
    """Dream each job's input video into its output; returns one `VideoResult` per job.

    - `network`: a loaded Network; if None, `on_network()` is called for one (the CLI loads it
      there, after every check), else `model` (default: the config's) with `weights` on `device`.
    - `config`: a `VideoConfig` (dream settings, flow, blend); default `VideoConfig()`.
    - `start`, `end`: the part to dream (``1.5s``, ``30f``; see `dreamer.video.source`).
    - `size`: dream at this longest side; `max_pixels`: refuse larger frames (default 100M).
    - `fps`: read the inputs at this rate (a frame folder's rate; default 30 for folders and the
      video's own rate for files). `audio`: copy the input's sound into MP4 outputs.
    - `force`: replace existing outputs (only when the new one is complete); `resume`: continue
      an interrupted run. `keep_frames`: keep the PNG frame store beside a finished video.
    - `batch_size`: at most this many same-size videos dreamed together (default all).
    - `progress(VideoProgress)` after each frame; `warn(message)` for warnings (default
      `warnings.warn`).

    Raises a DreamerError before any work for bad inputs or outputs, and `VideoInterrupted`
    (a KeyboardInterrupt) after writing partial videos when interrupted.
    """
    config = config or VideoConfig()
    if force and resume:
        raise UsageError("give force or resume, not both", hint="--resume continues a run; --force starts it over")
    warn = warn or (lambda message: warnings.warn(message, stacklevel=3))
    start = parse_time(start, option="--start") if isinstance(start, str) else start
    end = parse_time(end, option="--end") if isinstance(end, str) else end
    jobs = [j if isinstance(j, VideoJob) else VideoJob(*j) for j in jobs]
    if not jobs:
        raise UsageError("no input video given")
    if config.uses_flow:
        from .flow import require_cv2

        require_cv2()
    plans = [_plan(n, job, fps=fps, start=start, end=end, size=size, max_pixels=max_pixels, audio=audio, warn=warn)
             for n, job in enumerate(jobs)]
    _check_paths(plans)

    from ..models.weights import parse_weights

    model_name = network.name if network is not None else (model or config.dream.model)
    weights_name = network.weights if network is not None else str(parse_weights(weights))
    for plan in plans:
        plan.manifest = _manifest(plan, config, model_name, weights_name)
    try:
        for plan in plans:
            _prepare(plan, force=force, resume=resume)
        todo = [p for p in plans if p.done < p.frames]
        if todo and network is None:
            if on_network is not None:
                network = on_network()
            else:
                from ..devices import resolve_device
                from ..models import load_model

                network = load_model(model_name, weights=weights, device=resolve_device(device))
        if todo:
            _check_sizes(todo, network, config, warn)
        for plan in plans:
            plan.store.write_manifest(plan.manifest)
    except BaseException:
        _cleanup_unused(plans)
        raise
    return _run(plans, todo, network, config, batch_size=batch_size, keep_frames=keep_frames, progress=progress)


def _check_sizes(plans: list[_Plan], network, config: VideoConfig, warn: Callable[[str], None]) -> None:
    from ..loops.deepdream import plan_octaves

    dream = config.dream
    for plan in plans:
        h, w = plan.size
        octaves = plan_octaves((h, w), dream.octaves, dream.octave_scale, network.min_size)
        if octaves.dropped:
            warn(f"{plan.job.input} ({w}x{h}) is too small for {dream.octaves} octaves of scale "
                 f"{dream.octave_scale:g}; using {len(octaves.sizes)}")


def _run(plans: list[_Plan], todo: list[_Plan], network, config: VideoConfig, *, batch_size, keep_frames: bool,
         progress) -> list[VideoResult]:
    for plan in plans:
        if plan.done >= plan.frames:  # finished earlier: only the encoding was left
            audio = "dropped" if plan.info.audio is not None else "none"
            if plan.kind != "frames":
                audio = _write_video(plan, plan.store.paths()[: plan.frames], plan.job.output, plan.frames)
            plan.finished = _finish_stored(plan, audio, keep_frames=keep_frames)
    writer = Worker(name="dreamer-frame-writer")
    total = sum(p.frames - p.done for p in todo)
    started = time.monotonic()
    first_done: float | None = None
    made = 0
    try:
        inputs = []
        for plan in todo:
            if plan.kind != "frames":
                plan.encoder = _Encoding(_encoder_target(plan), fps=plan.fps, kind=plan.kind,
                                         stored=plan.store.paths()[: plan.done])
            inputs.append(_inputs(plan, config))
        for frame in dream_streams(inputs, network, config, batch_size=batch_size):
            plan = todo[frame.video]
            writer.submit(plan.store.write, frame.index, frame.image, _frame_metadata(plan, frame.index, config, network))
            if plan.encoder is not None:
                plan.encoder.add(frame.image)
            made += 1
            now = time.monotonic()
            if first_done is None:
                first_done = now
            rate = (made - 1) / (now - first_done) if made > 1 and now > first_done else None
            if progress is not None:
                progress(VideoProgress(made, total, plan.number, frame.index, plan.frames, now - started, rate,
                                       (total - made) / rate if rate else None))
            if frame.index == plan.frames - 1:
                writer.wait()
                plan.prefetch.close()
                plan.finished = _finish(plan, keep_frames=keep_frames)
        writer.finish()
    except BaseException as exc:
        for plan in todo:
            if plan.prefetch is not None:
                plan.prefetch.close()
        try:
            writer.finish()  # the frames already made are kept
        except Exception:  # noqa: BLE001  (the first error is the one to report)
            pass
        for plan in todo:
            if plan.encoder is not None and plan.finished is None:
                plan.encoder.abort()
        kept = []
        for plan in todo:
            if plan.finished is None:
                try:
                    partial = _keep_partial(plan)
                except DreamerError:
                    partial = None
                kept.append((plan.job.input, plan.store.count(), plan.frames, partial, plan.store.folder))
        if isinstance(exc, KeyboardInterrupt):
            raise VideoInterrupted(kept, [p.finished for p in plans if p.finished is not None]) from None
        if isinstance(exc, DreamerError) and kept:
            notes = "; ".join(f"{n} of {total_} frames of {src} kept in {folder}" + (f", partial video {pv}" if pv else "")
                              for src, n, total_, pv, folder in kept if n)
            if notes:
                exc.hint = ((exc.hint + "; ") if exc.hint else "") + notes
        raise
    return [p.finished for p in plans]


def _finish_stored(plan: _Plan, audio: str, *, keep_frames: bool) -> VideoResult:
    """A resumed run whose frames were all made earlier: the video was just encoded."""
    if plan.partial_ours:
        _unlink(partial_path(plan.job.output))
    if plan.kind != "frames" and not keep_frames:
        plan.store.clear()
    return VideoResult(plan.job.output, plan.frames, plan.fps, plan.size, audio, resumed=plan.done)


def dream_video(input: str | os.PathLike, output: str | os.PathLike | None = None, *, network=None,
                config: VideoConfig | None = None, **options: Any) -> Path:
    """Dream one video file (or folder of numbered frames) into `output` (.mp4, .gif, .webp or a
    folder; default ``INPUT.dream.mp4`` beside it) and return the output path.

    `config` defaults to `VideoConfig()`; DreamConfig fields (``layers=["mixed4c"]``, ``steps=3``)
    and ``flow``/``blend`` may also be given as keywords. Other keywords are those of
    `dream_videos` (start, end, size, fps, audio, force, resume, progress, ...).

    >>> import dreamer
    >>> dreamer.dream_video("clip.mp4", "clip.dream.mp4", layers=["mixed4c"], blend=0.8)
    """
    config = config or VideoConfig()
    dream_fields = {f.name for f in dataclasses.fields(config.dream)}
    dream_changes = {k: options.pop(k) for k in list(options) if k in dream_fields and k != "model"}
    if "model" in options and network is None:
        dream_changes["model"] = options["model"]
    video_changes = {k: options.pop(k) for k in ("flow", "blend") if k in options}
    if dream_changes:
        if "layers" in dream_changes or "classes" in dream_changes:
            from ..config import parse_class_target, parse_layer_target

            for key, parse in (("layers", parse_layer_target), ("classes", parse_class_target)):
                if key in dream_changes:
                    dream_changes[key] = tuple(parse(v) if isinstance(v, str) else v for v in dream_changes[key])
            dream_changes.setdefault("classes" if "layers" in dream_changes else "layers", ())
        video_changes["dream"] = config.dream.replace(**dream_changes)
    if video_changes:
        config = config.replace(**video_changes)
    input = Path(input)
    output = Path(output) if output is not None else default_output(input)
    (result,) = dream_videos([VideoJob(input, output)], network, config, **options)
    return result.output
