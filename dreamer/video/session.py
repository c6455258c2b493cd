"""Dreaming video files: paths in, paths out, resumable, interruptible. Library code: no
printing (progress and warnings go to callbacks), no click.

One call dreams one or more input videos (`dream_videos`; `dream_video` for one). For each:

1. Before any work: probe the input (`dreamer.io.video_in`), select the frames (`start`,
   `end`), choose the working size, check and lock the output (`dreamer.io.locks`), read
   what an earlier run left, and with `resume` check that its recorded settings are the same.
2. Frames are decoded, resized and paired with their optical flow in a background thread
   per video, dreamed (same-size videos as one batch per frame step), then written as PNGs
   into the frame store by a writer thread and fed to the video encoder as they come, so
   the network sets the pace.
3. When a video's last frame is made, the encoder finishes (the file is read back and must
   hold every frame), the input's audio is copied into an MP4 (`dreamer.io.audio`), the
   result replaces the output in one rename, and the frame store is removed (unless
   `keep_frames`).

The file-safety rules are those of `dreamer.zoom.session` (and use the same helpers):
nothing dreamer did not write is deleted or overwritten (`ForeignFilesError`, with or without
`force`); one writer per output (`LockedError`); the old output stays until the new one is
complete (a frames-folder output made again with `force` is made in ``out.partial/`` and
swapped in at the end); after Ctrl-C or a failure the frames so far are encoded beside the
output as ``out.partial.mp4`` (with its share of the sound), never over it; inputs are never
outputs. `resume` continues from the last stored frame and gives the same video as an
uninterrupted run: each dreamed frame is stored as 8-bit RGB before it is carried to the
next, every frame's seed depends only on (seed, video number, frame number), and the optical
flow only on the input frames.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DreamerError, ImageError, OutputError, OutputExistsError, UsageError
from .frames import VideoConfig, VideoInput, dream_streams, with_motion
from .prefetch import Prefetch, Worker
from .source import TimePoint, frame_range, parse_time, working_size

__all__ = [
    "MANIFEST_FORMAT",
    "VideoJob",
    "VideoProgress",
    "VideoResult",
    "VideoInterrupted",
    "KeptVideo",
    "default_output",
    "output_paths",
    "check_paths",
    "dream_videos",
    "dream_video",
]

MANIFEST_FORMAT = "dreamer video 1"
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
    """A finished video: ``output``, its ``frames`` at ``fps`` and ``size`` (height, width);
    ``audio`` says what became of the input's sound ("copied", "re-encoded (aac)", "none" (the
    input has none), "dropped"); ``resumed`` frames came from an earlier run."""

    output: Path
    frames: int
    fps: Fraction
    size: tuple[int, int]
    audio: str
    resumed: int = 0


@dataclass(frozen=True)
class KeptVideo:
    """An unfinished video after an interruption: ``made`` of ``frames`` frames are in ``store``;
    ``partial`` is the playable video of them (None, with the reason in ``note``, if none)."""

    input: Path
    made: int
    frames: int
    store: Path
    partial: Path | None
    note: str = ""


class VideoInterrupted(KeyboardInterrupt):
    """Ctrl-C during `dream_videos`, after the partial videos were written: ``kept`` lists the
    unfinished videos (`KeptVideo`), ``finished`` the `VideoResult`s completed before."""

    def __init__(self, kept: list[KeptVideo], finished: list[VideoResult]) -> None:
        super().__init__("interrupted")
        self.kept = kept
        self.finished = finished


def default_output(input: Path, kind: str = "mp4", folder: Path | None = None) -> Path:
    """``clip.mov`` -> ``clip.dream.mp4`` beside it (or in `folder`); a frame folder ``shots/``
    -> ``shots.dream.mp4`` beside the folder. `kind` "frames" gives ``clip.dream.frames``."""
    input = Path(input)
    name = input.name if input.is_dir() else input.stem
    ext = ".frames" if kind == "frames" else f".{kind}"
    return (folder if folder is not None else input.absolute().parent) / f"{name}.dream{ext}"


# --- planning: every check before any change -----------------------------------------------------


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
    partial: Path = Path()
    survey: Any = None  # StoreSurvey of `store` when inspected
    manifest: dict[str, Any] = field(default_factory=dict)
    swap: bool = False  # frames output: the store is `partial`, moved onto the output at the end
    created: bool = False  # the store folder was made by this call
    done: int = 0
    previous_dream: np.ndarray | None = None
    encoder: Any = None  # _Encoding
    prefetch: Any = None  # Prefetch
    finished: VideoResult | None = None

    @property
    def frames(self) -> int:
        return self.stop - self.first

    @property
    def fps(self) -> Fraction:
        return self.info.fps

    @property
    def name(self) -> str:
        return str(self.job.input)

    def paths(self) -> list[Path]:
        """Every path this video may write."""
        return list(dict.fromkeys([self.job.output, self.store.folder, self.partial]))


def _located(plan_name: str, exc: DreamerError, several: bool) -> DreamerError:
    """The same error, its message prefixed with the input's name (when there are several)."""
    if several and not exc.message.startswith(f"{plan_name}:"):
        exc.message = f"{plan_name}: {exc.message}"
        exc.args = (exc.message,)
    return exc


def _model(network):
    """The Network behind a network or a `PreparedNetwork` (names, weights, spec)."""
    from ..backend import PreparedNetwork

    return network.network if isinstance(network, PreparedNetwork) else network


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.absolute().resolve() == b.absolute().resolve()


def _within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies anywhere inside it."""
    try:
        path.absolute().resolve().relative_to(folder.absolute().resolve())
        return True
    except (ValueError, OSError):
        return False


def _plan(number: int, job: VideoJob, *, fps, start, end, size, max_pixels, audio, warn) -> _Plan:
    from ..io.atomic import check_name
    from ..io.images import DEFAULT_MAX_PIXELS
    from ..io.video import FrameStore, frame_store_path, output_kind, partial_path
    from ..io.video_in import probe_video

    kind = output_kind(job.output)  # an unknown extension is a usage error, before the input is read
    for path, what in ((job.output, "output"), (frame_store_path(job.output), "frame store"),
                       (partial_path(job.output), "partial result")):
        check_name(path, what=what)
    parent = job.output.absolute().parent
    if not parent.is_dir():
        problem = "is not a folder" if parent.exists() else "does not exist"
        raise OutputError(f"cannot write {str(job.output)!r}: folder {str(parent)!r} {problem}")
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
    keep_audio = False
    if info.audio is not None and audio:
        if kind == "mp4":
            keep_audio = True
        else:
            warn(f"{name} has sound, but a {'frame folder' if kind == 'frames' else kind.upper()} cannot hold it: "
                 "the audio is dropped (write an .mp4 to keep it)")
    return _Plan(number, job, info, first, stop, work, kind, keep_audio,
                 store=FrameStore(frame_store_path(job.output)), partial=partial_path(job.output))


def output_paths(output: Path) -> list[Path]:
    """Every path a video written to `output` may write (output, frame store, partial result):
    the paths its run locks."""
    from ..io.video import frame_store_path, partial_path

    return list(dict.fromkeys([Path(output), frame_store_path(output), partial_path(output)]))


@dataclass(eq=False)
class _Paths:
    """What `_check_paths` reads of a plan, for a job not planned yet."""

    job: VideoJob

    @property
    def name(self) -> str:
        return str(self.job.input)

    def paths(self) -> list[Path]:
        return output_paths(self.job.output)


def check_paths(jobs: Sequence[VideoJob]) -> None:
    """The rules between the videos of one run, checked without reading them: no two write one
    path; none writes, or writes into, an input (UsageError / OutputExistsError)."""
    _check_paths([_Paths(job) for job in jobs])


def _check_paths(plans: Sequence[_Plan | _Paths]) -> None:
    """No two videos write one path; no video writes, or writes into, an input."""
    seen: dict[Path, _Plan] = {}
    for plan in plans:
        for path in plan.paths():
            key = path.absolute().resolve()
            other = seen.get(key)
            if other is not None and other is not plan:
                raise UsageError(f"{other.name} and {plan.name} would both be written to {path}",
                                 hint="give them different outputs")
            seen[key] = plan
    for plan in plans:
        for source in (p.job.input for p in plans):
            for path in plan.paths():
                if _same(path, source) or (source.is_dir() and _within(path, source)) or _within(source, path):
                    raise OutputExistsError(
                        f"{plan.job.output} would overwrite the input {source}"
                        + ("" if path == plan.job.output else f" (through {path})"),
                        hint="choose another output",
                    )


def _manifest(plan: _Plan, config: VideoConfig, model: str, weights: str, controls: dict | None) -> dict[str, Any]:
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
        "controls": dict(controls or {}),
        "audio": plan.audio,
    }
    return json.loads(json.dumps(data))


def _partial_ours(plan: _Plan, manifest: dict[str, Any] | None) -> bool:
    from ..io.video import partial_is_ours

    return partial_is_ours(plan.partial, manifest)


def _inspect(plan: _Plan, mode: str) -> None:
    """Decide where this video's frames go and what an earlier run left (changes nothing)."""
    from ..io.video import FrameStore, foreign_files_error

    out = plan.job.output
    if plan.kind == "frames":
        if out.exists() and not out.is_dir():
            raise OutputError(f"{str(out)!r} is a file, but the output folder must go there")
        main = FrameStore(out).survey()
        if main.foreign:
            raise foreign_files_error(out, main, "the output folder")
        part_store = FrameStore(plan.partial)
        part = part_store.survey()
        if part.exists and not part.is_dir:
            raise OutputError(f"{str(plan.partial)!r} is a file, but a partial frames folder must go there")
        if part.foreign:
            raise foreign_files_error(plan.partial, part, "the folder")
        if mode == "new" and (main.frames or part.frames):
            where = out if main.frames else plan.partial
            raise OutputExistsError(f"{str(where)!r} already holds frames of an earlier run",
                                    hint="use --resume to continue that run, or --force to start over")
        plan.swap = bool(main.frames) if mode == "force" else bool(part.frames) if mode == "resume" else False
        if plan.swap:
            plan.store = part_store
    else:
        folder = plan.store.folder
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{str(folder)!r} is a file, but the frame store folder must go there")
        if out.is_dir():
            raise OutputError(f"{str(out)!r} is a folder; a {plan.kind} file cannot be written there")
        survey = plan.store.survey()
        if survey.foreign:
            raise foreign_files_error(folder, survey, "the frame store")
        if mode == "new":
            if out.exists():
                raise OutputExistsError(f"{str(out)!r} already exists",
                                        hint="use --force to overwrite it, or --resume to continue its run")
            if survey.frames:
                raise OutputExistsError(f"{str(folder)!r} already holds frames of an earlier run",
                                        hint="use --resume to continue that run, or --force to start over")
    plan.survey = plan.store.survey()
    if mode == "resume":
        _inspect_resume(plan)


def _inspect_resume(plan: _Plan) -> None:
    from ..zoom.manifest import differences

    count = plan.store.count()
    if count == 0:
        if plan.kind != "frames" and plan.job.output.exists():
            raise UsageError(
                f"{plan.job.output} exists and there are no frames in {plan.store.folder} to resume from "
                "(its run finished, or the frames were removed)",
                hint="use --force to make it again",
            )
        return
    old = plan.survey.manifest
    if not (isinstance(old, dict) and old.get("format") == MANIFEST_FORMAT):
        what = old.get("format") if isinstance(old, dict) else None
        raise UsageError(
            f"cannot resume {plan.job.output}: {plan.store.folder} holds frames of {what!r}, not of dreamer video"
            if what else f"cannot resume {plan.job.output}: {plan.store.folder} has no dreamer video manifest",
            hint="use --force to start over, or another output",
        )
    new = plan.manifest
    old = {"controls": {}, **old}  # written before controls were recorded: none
    diffs = [d for key in sorted(set(old) | set(new)) if key not in _FREE_ON_RESUME
             for d in differences(old.get(key), new.get(key), key)]
    if diffs:
        raise UsageError(
            f"cannot resume {plan.job.output}: the settings differ from the run that made its {count} frames: "
            f"{'; '.join(diffs)}",
            hint="run again with the first run's settings, or use --force to start over",
        )
    if "partial" in old:
        plan.manifest["partial"] = old["partial"]
    done = min(count, plan.frames)
    try:
        last = plan.store.read(done - 1)
    except ImageError as exc:
        raise ImageError(
            f"cannot resume {plan.job.output}: frame {done - 1} in {plan.store.folder} cannot be read ({exc.message})",
            hint=f"delete that frame (and any after it) to resume from frame {done - 2}, or use --force",
        ) from None
    if last.shape[:2] != plan.size:
        raise UsageError(f"cannot resume {plan.job.output}: frame {done - 1} is {last.shape[1]}x{last.shape[0]}, "
                         f"not {plan.size[1]}x{plan.size[0]}", hint="use --force to start over")
    plan.done = done
    plan.previous_dream = last


def _prepare(plan: _Plan, mode: str) -> None:
    """Clear what `force` replaces (dreamer's files only), create the store, write its manifest."""
    from ..io.atomic import os_error_message

    survey = plan.survey
    if mode != "resume" and survey.ours:
        if plan.kind != "frames" and _partial_ours(plan, survey.manifest):
            with contextlib.suppress(OSError):
                plan.partial.unlink()  # the partial result of the run being replaced
        plan.store.clear()
    try:
        plan.created = not plan.store.folder.exists()
        plan.store.folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(os_error_message(plan.store.folder, exc)) from exc
    plan.store.write_manifest(plan.manifest)  # also proves the folder is writable


def _cleanup_unused(plans: list[_Plan]) -> None:
    """Remove frame store folders this call created and never wrote a frame into."""
    for plan in plans:
        if plan.created and plan.store.count() == 0:
            plan.store.clear(remove_folder=True)


# --- encoding in the background ------------------------------------------------------------------


class _Aborted(Exception):
    """Raised inside the encoder's frame iterator to abandon the file (never reaches a user)."""


class _Encoding:
    """Encodes a video in a thread from frames handed over one by one (after `stored` ones)."""

    _END = object()
    _ABORT = object()

    def __init__(self, target: Path, *, fps: Fraction, kind: str, expect: int, stored: Sequence[Path]) -> None:
        self.target = target
        self._queue: Any = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fps, kind, expect, list(stored)),
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

    def _run(self, fps: Fraction, kind: str, expect: int, stored: list[Path]) -> None:
        from ..io.video import encode

        try:
            encode(self._frames(stored), self.target, fps=float(fps), kind=kind, expect=expect)
        except _Aborted:
            pass
        except BaseException as exc:  # noqa: BLE001  (raised again in the dreaming thread)
            self._error = exc
            self._drain()

    def _drain(self) -> None:
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
            except queue.Full:
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
            except queue.Full:  # filled again meanwhile: the thread is busy encoding; drain and retry
                self._drain()
                self._queue.put(self._ABORT)
            self._thread.join()


# --- the run -------------------------------------------------------------------------------------


def _mux(plan: _Plan, video: Path, output: Path, count: int) -> str:
    """Write `output`: the video-only MP4 `video` plus the input's sound for its `count` frames."""
    from ..io.audio import add_audio

    info = plan.info
    begin = info.start_time + plan.first / float(plan.fps)
    whole = plan.first == 0 and plan.first + count >= info.frames
    end = None if whole else info.start_time + (plan.first + count) / float(plan.fps)
    return add_audio(video, info.path, output, audio_index=info.audio.index, begin=begin, end=end)


def _video_temp(plan: _Plan) -> Path:
    """A temporary video-only file in the frame store (dreamer's: removed with it)."""
    from ..io.atomic import temp_path

    return temp_path(plan.store.folder / "video.mp4")


def _write_video(plan: _Plan, frames: Sequence[Any], output: Path, count: int) -> str:
    """Encode `frames` (paths or arrays, `count` of them) into `output` with the plan's audio cut
    to match, verified; returns what became of the audio. Complete or not there at all."""
    from ..io.video import encode

    if not plan.audio:
        encode(frames, output, fps=float(plan.fps), kind=plan.kind, expect=count)
        return "dropped" if plan.info.audio is not None else "none"
    temp = _video_temp(plan)
    try:
        encode(frames, temp, fps=float(plan.fps), kind=plan.kind, expect=count)
        return _mux(plan, temp, output, count)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def _frame_metadata(plan: _Plan, index: int, config: VideoConfig, network) -> dict[str, str]:
    from ..io.metadata import build_metadata
    from ..zoom.feedback import frame_seed

    model = _model(network)
    return build_metadata(
        config.dream, model=model.name, weights=model.weights, device=str(network.device),
        source=str(plan.job.input), seed=frame_seed(config.seed, plan.number, index), frame=index,
        video=plan.number, source_frame=plan.first + index, flow=config.flow, blend=config.blend,
    )


def _inputs(plan: _Plan, config: VideoConfig) -> VideoInput:
    """The plan's frames from `done` on, decoded and paired with their motion in a thread."""
    from ..io.video_in import read_frames

    method = config.flow if config.uses_flow else "none"
    frames = read_frames(plan.info, plan.first + max(plan.done - 1, 0), plan.stop, size=plan.size)
    previous = next(frames) if plan.done else None  # input frame done-1: frame `done`'s flow starts there
    plan.prefetch = Prefetch(with_motion(frames, method, previous if config.blend > 0 else None),
                             depth=4, name=f"dreamer-video-{plan.number}")
    state = (previous, plan.previous_dream) if plan.done else None
    return VideoInput(plan.prefetch, seed=config.seed, index=plan.number, done=plan.done, previous=state,
                      motion_ready=True)


def _swap_into_place(plan: _Plan) -> None:
    """Replace a frames-folder output by the new frames made in its partial folder."""
    from ..io.video import swap_frames_folder

    plan.store = swap_frames_folder(plan.job.output, plan.store.folder)
    plan.swap = False


def _finish(plan: _Plan, *, keep_frames: bool) -> VideoResult:
    """Complete a video whose frames are all stored: the output (verified), then tidy up."""
    from ..io.video import count_frames

    count = plan.store.count()
    if count < plan.frames:
        raise OutputError(f"{plan.job.output} is not finished: {plan.store.folder} holds {count} of its "
                          f"{plan.frames} frames", hint="run the same command with --resume to make the rest")
    audio = "dropped" if plan.info.audio is not None else "none"
    if plan.kind == "frames":
        if plan.swap:
            _swap_into_place(plan)
        stored, _ = count_frames(plan.job.output, "frames")
        if stored < plan.frames:
            raise OutputError(f"{plan.job.output} holds {stored} frames, not {plan.frames}")
    else:
        if plan.encoder is not None:  # encoded while dreaming: verified when it closes
            plan.encoder.finish()
            if plan.audio:
                try:
                    audio = _mux(plan, plan.encoder.target, plan.job.output, plan.frames)
                finally:
                    with contextlib.suppress(OSError):
                        plan.encoder.target.unlink()
        else:  # every frame was made by an earlier run
            audio = _write_video(plan, plan.store.paths(plan.frames), plan.job.output, plan.frames)
        if _partial_ours(plan, plan.store.read_manifest()):
            with contextlib.suppress(OSError):
                plan.partial.unlink()
        if not keep_frames:
            plan.store.clear(remove_folder=True)
    plan.finished = VideoResult(plan.job.output, plan.frames, plan.fps, plan.size, audio, resumed=plan.done)
    return plan.finished


def _keep(plan: _Plan) -> KeptVideo:
    """After an interruption or failure: a playable video of the frames so far, beside the output
    (never over it, never over a file dreamer did not write)."""
    from ..io.video import partial_record

    count = min(plan.store.count(), plan.frames)
    kept = KeptVideo(plan.job.input, count, plan.frames, plan.store.folder, None)
    if plan.kind == "frames" or count == 0:
        return kept
    manifest = plan.store.read_manifest() or plan.manifest
    if plan.partial.exists() and not _partial_ours(plan, manifest):
        return dataclasses.replace(kept, note=f"no partial video: {plan.partial} exists and dreamer did not write it")
    try:
        _write_video(plan, plan.store.paths(count), plan.partial, count)
    except DreamerError as exc:
        return dataclasses.replace(kept, note=f"no partial video: {exc.message}")
    with contextlib.suppress(DreamerError, OSError):
        plan.store.write_manifest(dict(manifest, partial=partial_record(plan.partial)))
    return dataclasses.replace(kept, partial=plan.partial)


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
    numbers: Sequence[int] | None = None,
    lock: bool = True,
    dream: Callable[..., Any] | None = None,
    controls: dict[str, Any] | None = None,
) -> list[VideoResult]:
    """Dream each job's input video into its output; returns one `VideoResult` per job.

    - `network`: a loaded Network or a `PreparedNetwork` (`dreamer.prepare`); if None,
      `on_network()` is called for one after every check (the CLI loads it there), else
      `model` (default: the config's) is loaded with `weights` on `device`.
    - `config`: a `VideoConfig` (dream settings, flow, blend); default `VideoConfig()`.
    - `start`, `end`: the part to dream (``1.5s``, ``30f``; see `dreamer.video.source`).
    - `size`: dream at this longest side; `max_pixels`: refuse larger frames (default 100M).
    - `fps`: read the inputs at this rate (a frame folder's rate; default 30 for folders and the
      video's own rate for files). `audio`: copy the input's sound into MP4 outputs.
    - `force`: replace dreamer's earlier outputs (once the new one is complete); `resume`:
      continue an interrupted run. `keep_frames`: keep the PNG frame store of a finished video.
    - `batch_size`: at most this many same-size videos dreamed together (default all).
    - `progress(VideoProgress)` after each frame; `warn(message)` for warnings (default
      `warnings.warn`).
    - `numbers`: each job's video number, which seeds its frames (default 0, 1, ...): a caller
      that dreams the videos of one run in several calls (`dreamer.scale.video`) gives each
      its number in the whole run, so its frames are those of one call over all of them.
    - `lock`: False when the caller already holds the outputs' locks (`output_paths`).
    - `dream`: the loop each frame is dreamed with (the signature of `dreamer.loops.run_config`;
      default the classic loop), e.g. one steered by controls (`dreamer.steer.dream`);
      `controls`: what it steers with, as plain data (`dreamer.steer.Controls.to_dict()`),
      recorded with the frames and compared on resume.

    Raises a DreamerError before any work for bad inputs or outputs (nothing is changed then),
    and `VideoInterrupted` (a KeyboardInterrupt) after writing partial videos on Ctrl-C.
    """
    from ..io.locks import OutputLock
    from ..io.video import check_encoder

    config = config or VideoConfig()
    if force and resume:
        raise UsageError("give --force or --resume, not both", hint="--resume continues a run; --force starts it over")
    mode = "resume" if resume else "force" if force else "new"
    warn = warn or (lambda message: warnings.warn(message, stacklevel=3))
    start = parse_time(start, option="--start") if isinstance(start, str) else start
    end = parse_time(end, option="--end") if isinstance(end, str) else end
    jobs = [j if isinstance(j, VideoJob) else VideoJob(*j) for j in jobs]
    if not jobs:
        raise UsageError("no input video given")
    if config.uses_flow:
        from .flow import require_cv2

        require_cv2()
    several = len(jobs) > 1
    if numbers is None:
        numbers = range(len(jobs))
    elif len(numbers) != len(jobs) or len(set(numbers)) != len(jobs) or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in numbers):
        raise ConfigError("numbers", list(numbers), "one distinct integer >= 0 per job")
    plans = []
    for n, job in zip(numbers, jobs):
        try:
            plans.append(_plan(n, job, fps=fps, start=start, end=end, size=size, max_pixels=max_pixels,
                               audio=audio, warn=warn))
        except DreamerError as exc:
            raise _located(str(job.input), exc, several) from None
    _check_paths(plans)
    for kind, rate in sorted({(p.kind, float(p.fps)) for p in plans}):
        check_encoder(kind, rate)  # a missing encoder or an unusable fps, before any work

    from ..models.weights import parse_weights

    model_name = _model(network).name if network is not None else (model or config.dream.model)
    weights_name = _model(network).weights if network is not None else str(parse_weights(weights))
    for plan in plans:
        plan.manifest = _manifest(plan, config, model_name, weights_name, controls)
    locks: list[OutputLock] = []
    try:
        try:
            for plan in plans if lock else ():
                for path in plan.paths():
                    locks.append(OutputLock(path).acquire())
            for plan in plans:
                try:
                    _inspect(plan, mode)
                except DreamerError as exc:
                    raise _located(plan.name, exc, several) from None
            for plan in plans:
                _prepare(plan, mode)
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
        except BaseException:
            _cleanup_unused(plans)
            raise
        return _run(plans, todo, network, config, batch_size=batch_size, keep_frames=keep_frames, progress=progress,
                    dream=dream)
    finally:
        _cleanup_unused(plans)
        for held in reversed(locks):
            held.release()


def _check_sizes(plans: list[_Plan], network, config: VideoConfig, warn: Callable[[str], None]) -> None:
    """Frames too small for the network are an ImageError; a warning when octaves are dropped."""
    from ..loops import octave_warning

    for plan in plans:
        try:
            message = octave_warning(plan.name, plan.size, config.dream, network.min_size)
        except DreamerError as exc:
            raise _located(plan.name, exc, len(plans) > 1) from None
        if message:
            warn(message)


def _run(plans: list[_Plan], todo: list[_Plan], network, config: VideoConfig, *, batch_size, keep_frames: bool,
         progress, dream=None) -> list[VideoResult]:
    writer: Worker | None = None
    try:
        for plan in plans:
            if plan.done >= plan.frames:  # every frame was made by an earlier run
                _finish(plan, keep_frames=keep_frames)
        if not todo:
            return [p.finished for p in plans]
        writer = Worker(name="dreamer-frame-writer")
        total = sum(p.frames - p.done for p in todo)
        started = time.monotonic()
        first_done: float | None = None
        made = 0
        inputs = []
        for plan in todo:
            if plan.kind != "frames":
                target = _video_temp(plan) if plan.audio else plan.job.output
                plan.encoder = _Encoding(target, fps=plan.fps, kind=plan.kind, expect=plan.frames,
                                         stored=plan.store.paths(plan.done))
            inputs.append(_inputs(plan, config))
        for frame in dream_streams(inputs, network, config, batch_size=batch_size, dream=dream):
            plan = todo[frame.video]
            writer.submit(plan.store.write, frame.index, frame.image, _frame_metadata(plan, frame.index, config, network))
            if plan.encoder is not None:
                plan.encoder.add(frame.image)
            made += 1
            now = time.monotonic()
            first_done = first_done if first_done is not None else now
            rate = (made - 1) / (now - first_done) if made > 1 and now > first_done else None
            if progress is not None:
                progress(VideoProgress(made, total, plan.number, frame.index, plan.frames, now - started, rate,
                                       (total - made) / rate if rate else None))
            if frame.index == plan.frames - 1:
                writer.wait()  # every frame of this video is in its store
                plan.prefetch.close()
                _finish(plan, keep_frames=keep_frames)
        writer.finish()
    except BaseException as exc:
        for plan in todo:
            if plan.prefetch is not None:
                plan.prefetch.close()
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.finish()  # the frames already made are kept
        for plan in todo:
            if plan.encoder is not None and plan.finished is None:
                plan.encoder.abort()
        kept = [_keep(plan) for plan in plans if plan.finished is None]
        if isinstance(exc, KeyboardInterrupt):
            raise VideoInterrupted(kept, [p.finished for p in plans if p.finished is not None]) from None
        if isinstance(exc, DreamerError):
            notes = "; ".join(f"{k.made} of {k.frames} frames of {k.input} are kept in {k.store}"
                              + (f", partial video {k.partial}" if k.partial else "") for k in kept if k.made)
            if notes:
                exc.hint = f"{exc.hint}; {notes}" if exc.hint else notes
        raise
    return [p.finished for p in plans]


def dream_video(input: str | os.PathLike, output: str | os.PathLike | None = None, *, network=None,
                config: VideoConfig | None = None, guide: Any = None, mask: Any = None, keep_colors: bool = False,
                **options: Any) -> Path:
    """Dream one video file (or folder of numbered frames) into `output` (.mp4, .gif, .webp or a
    folder; default ``INPUT.dream.mp4`` beside it) and return the output path.

    `config` defaults to `VideoConfig()`; DreamConfig fields (``layers=["mixed4c"]``, ``steps=3``,
    ``model="efficientnet-lite0"``) and ``flow``/``blend`` may also be given as keywords, resolved
    like the command line's flags (`DreamConfig.override`; naming nothing dreams the model's
    default layer). Other keywords are those of `dream_videos` (weights, device, start, end,
    size, fps, audio, force, resume, progress, ...). `guide`, `mask` and `keep_colors` steer every
    frame as in `dreamer.dream` (a path, PIL image or tensor; recorded and compared on resume).

    >>> import dreamer
    >>> dreamer.dream_video("clip.mp4", "clip.dream.mp4", layers=["mixed4c"], blend=0.8)
    """
    base = config or VideoConfig()
    dream_fields = {f.name for f in dataclasses.fields(base.dream)}
    dream_changes = {k: options.pop(k) for k in list(options) if k in dream_fields}
    video_changes = {k: options.pop(k) for k in ("flow", "blend") if k in options}
    dream = base.dream.override(**dream_changes) if dream_changes else base.dream
    if config is None and not {"layers", "classes"} & set(dream_changes):
        # nothing to dream named: the model's own default layer, as the CLI and dreamer.dream do
        from ..models import get_spec

        spec = _model(network).spec if network is not None and _model(network).spec else get_spec(dream.model)
        dream = dream.replace(layers=(spec.default_layer,), classes=())
    config = base.replace(dream=dream, **video_changes)
    from ..steer import check_controls, controls_from, steered_loop

    controls = controls_from(guide, mask, keep_colors)
    if controls is not None:
        check_controls(config.dream, controls)
        options.update(dream=steered_loop(controls), controls=controls.to_dict())
    input = Path(input)
    output = Path(output) if output is not None else default_output(input)
    (result,) = dream_videos([VideoJob(input, output)], network, config, **options)
    return result.output
