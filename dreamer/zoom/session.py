"""Zoom sessions: make, interrupt and resume zoom videos in files, without the command line.

A `ZoomSession` takes one or more `ZoomJob`s (a start image, an output path, a `ZoomConfig`,
a seed ...) and owns their files from `open()` to `close()`::

    from dreamer.zoom import ZoomConfig, ZoomJob, ZoomSession
    jobs = [ZoomJob(start, "photo.mp4", ZoomConfig(frames=120), seed=0, source="photo.jpg")]
    with ZoomSession(jobs, model=net.name, weights=net.weights, mode="resume") as session:
        session.run(net, on_event=print)          # every frame written as it is made

or in one call: `make_zoom_video("photo.jpg", "photo.mp4", network=net, config=...)`.

What a session guarantees (the library's promises, the CLI only reports them):

- **Nothing foreign is touched.** An output folder or frame store holding files dreamer did
  not write (a user's ``manifest.json``, photos, frames without dreamer's manifest) is refused
  (`ForeignFilesError`, exit 2), with or without ``force``. ``force`` replaces only the output
  file that was named and dreamer's own frames.
- **One writer per output.** `open()` locks every path a video writes (output, frame store,
  partial result; see `dreamer.io.locks`); a second session gets `LockedError` (exit 1).
- **The old output stays until the new one is complete.** Frames go to the frame store
  (``out.mp4.frames/``; for a frames-folder output that already holds a finished run,
  ``out.partial/``, swapped in at the end). After Ctrl-C the frames so far are encoded beside
  the output as ``out.partial.mp4``, never over it.
- **Success is verified.** A video is finished only when its store holds every frame and the
  encoded file reads back with that many frames; anything else is an error.
- **Sources are never overwritten or deleted**: a source that is an output, or lies inside a
  frame store this session may clear, is refused before any work.
- **Resume gives the same video**: see `dreamer.zoom.feedback` (frames are fed back as the
  8-bit images stored) and `dreamer.io.video` (MP4 bytes are a pure function of the frames).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import DreamerError, ImageError, OutputError, OutputExistsError, UsageError
from ..io.atomic import check_name
from ..io.locks import OutputLock
from ..io.video import (
    ForeignFilesError,
    FrameStore,
    StoreSurvey,
    check_encoder,
    check_fps,
    count_frames,
    encode,
    foreign_files_error,
    frame_store_path,
    output_kind,
    partial_is_ours,
    partial_path,
    partial_record,
    swap_frames_folder,
)
from .feedback import ZoomConfig, ZoomVideo, frame_seed, frame_to_tensor, zoom_frames
from .manifest import build_manifest, is_zoom_manifest, resume_problem

__all__ = [
    "Mode",
    "ForeignFilesError",
    "ZoomJob",
    "ZoomEvent",
    "VideoState",
    "ZoomSession",
    "make_zoom_video",
]

Mode = Literal["new", "force", "resume"]
_MODES = ("new", "force", "resume")


@dataclass(frozen=True, eq=False)
class ZoomJob:
    """One video to make.

    - ``start``: (1,3,H,W) float in [0,1], any device: frame 0 (the source, already sized).
    - ``output``: ``.mp4``, ``.gif``, ``.webp``, or a folder of PNG frames.
    - ``config``, ``seed``, ``index``: as in `ZoomVideo` (``index`` numbers the video for the
      per-frame seeds: keep it the same when resuming).
    - ``fps``: frames per second of the video file (may change on resume).
    - ``source``: how the source is named (recorded in the manifest and compared on resume).
    - ``source_path``: the source file, if any: never written, moved or deleted.
    - ``name``: how messages name this video (default: ``source`` or the output).
    - ``presets``: the preset each of ``config.dreams`` came from (None: none), recorded in
      every frame's metadata.
    """

    start: torch.Tensor
    output: Path
    config: ZoomConfig = ZoomConfig()
    seed: int = 0
    index: int = 0
    fps: float = 30.0
    source: str = ""
    source_path: Path | None = None
    name: str = ""
    presets: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        ZoomVideo(self.start, self.config, seed=self.seed, index=self.index)  # the same checks
        output = Path(self.output)
        if output.name in ("", ".", ".."):  # "", ".", "dir/..": the folder it names, by its own name
            output = Path(os.path.abspath(output))
        if not output.name:
            raise UsageError(f"cannot write a video to {str(self.output)!r}: it names no file or folder",
                             hint="e.g. zoom.mp4, or a folder name")
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "fps", check_fps(self.fps))
        if self.source_path is not None:
            object.__setattr__(self, "source_path", Path(self.source_path))
        if not self.name:
            object.__setattr__(self, "name", self.source or str(self.output))


@dataclass(frozen=True)
class ZoomEvent:
    """Something a session did: ``kind`` "frame" (frame ``frame`` of ``video`` was written),
    "finished" (``video``'s output is complete and verified) or "partial" (after an
    interruption, ``video.partial_written`` holds the frames so far)."""

    kind: Literal["frame", "finished", "partial"]
    video: VideoState
    frame: int = -1


@dataclass(eq=False)
class VideoState:
    """One video of a session, as it stands. ``status``: "pending", "finished",
    "interrupted" or "failed"."""

    job: ZoomJob
    kind: str
    store: FrameStore
    partial: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    start: torch.Tensor | None = None  # what the next frame is made from (source or last frame)
    done: int = 0  # finished frames when the run began
    made: int = 0  # frames made by this session
    status: str = "pending"
    partial_written: Path | None = None
    note: str | None = None  # why there is no partial result, or where the frames are
    swap: bool = False  # frames output: the store is `partial`, moved onto the output at the end
    created: bool = False  # the store folder was made by this session
    prepared: bool = False  # this session cleared/created the store and wrote its manifest
    survey: StoreSurvey | None = None

    @property
    def output(self) -> Path:
        return self.job.output

    @property
    def frames(self) -> int:
        return self.job.config.frames

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def stored(self) -> int:
        """Frames now in the store."""
        return self.store.count()


def _located(name: str, exc: DreamerError) -> DreamerError:
    """The same error, its message prefixed with the video's name (for several videos)."""
    if exc.message.startswith(f"{name}:"):
        return exc
    exc.message = f"{name}: {exc.message}"
    exc.args = (exc.message,)
    return exc


def _key(path: Path) -> Path:
    """`path` with links followed where they can be (a link loop or an unreadable folder: as is)."""
    try:
        return path.absolute().resolve()
    except (OSError, RuntimeError):  # RuntimeError: a link loop (Python < 3.13)
        return Path(os.path.abspath(path))


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return _key(a) == _key(b)


def _inside(path: Path, folder: Path) -> bool:
    return _key(path).parent == _key(folder)


class ZoomSession:
    """Zoom videos made into files, with locks, resume and partial results (see the module
    docstring). `mode`: "new" (refuse existing outputs), "force" (replace dreamer's own
    earlier outputs) or "resume" (continue from the stored frames). `model` and `weights`
    name the network, `controls` the dream controls the frames are steered by
    (`dreamer.steer.Controls.to_dict()`): recorded and compared on resume."""

    def __init__(self, jobs: Sequence[ZoomJob], *, model: str, weights: str, mode: Mode = "new",
                 keep_frames: bool = False, controls: dict | None = None) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if not jobs:
            raise UsageError("no videos to make")
        self.jobs = list(jobs)
        self.model = model
        self.weights = weights
        self.mode = mode
        self.keep_frames = keep_frames
        self.controls = dict(controls or {})
        self.videos: list[VideoState] = []
        self._locks: list[OutputLock] = []
        self._open = False

    # --- opening: every check before any change ---------------------------------------------

    def open(self) -> ZoomSession:
        """Check every output, lock them, read what earlier runs left, then prepare the frame
        stores (writing manifests). Nothing is changed unless every video passes its checks.
        Raises a `DreamerError` (nothing changed, nothing locked) when one does not."""
        if self._open:
            return self
        try:
            self.videos = [self._plan(job) for job in self.jobs]
            self._check_paths()
            for kind, fps in sorted({(v.kind, v.job.fps) for v in self.videos}):
                check_encoder(kind, fps)  # a missing encoder or an unusable fps, before any work
            self._lock()
            for video in self.videos:
                try:
                    self._inspect(video)
                except DreamerError as exc:
                    raise self._named(video.job, exc) from None
            for video in self.videos:
                self._prepare(video)
        except BaseException:
            self._cleanup_unused()
            self._unlock()
            raise
        self._open = True
        return self

    def _plan(self, job: ZoomJob) -> VideoState:
        try:
            kind = output_kind(job.output)
            for path, what in ((job.output, "output"), (frame_store_path(job.output), "frame store"),
                               (partial_path(job.output), "partial result")):
                check_name(path, what=what)
            parent = job.output.parent
            if not parent.is_dir():
                problem = "is not a folder" if parent.exists() else "does not exist"
                raise OutputError(f"cannot write {str(job.output)!r}: folder {str(parent)!r} {problem}")
        except DreamerError as exc:
            raise self._named(job, exc) from None
        return VideoState(job=job, kind=kind, store=FrameStore(frame_store_path(job.output)),
                          partial=partial_path(job.output), start=job.start)

    def _named(self, job: ZoomJob, exc: DreamerError) -> DreamerError:
        """`exc` prefixed with the video's name where that helps: several videos, or a name that
        is not the source (a jobs file's FILE:LINE)."""
        own = job.name not in (job.source, str(job.output))
        return _located(job.name, exc) if len(self.jobs) > 1 or own else exc

    def _paths(self, video: VideoState) -> list[Path]:
        paths = [video.output, video.store.folder, video.partial]
        return list(dict.fromkeys(paths))

    def _check_paths(self) -> None:
        """No two videos write the same path; no video writes or clears a source."""
        seen: dict[Path, VideoState] = {}
        for video in self.videos:
            for path in self._paths(video):
                key = _key(path)
                other = seen.get(key)
                if other is not None and other is not video:
                    raise UsageError(
                        f"{other.name} and {video.name} would both be written to {path}",
                        hint="give them different outputs (sources with the same name need separate -o runs or a jobs file)",
                    )
                seen[key] = video
        sources = [(j.source_path, j.name) for j in self.jobs if j.source_path is not None]
        for video in self.videos:
            for source, name in sources:
                for path in self._paths(video):
                    if _same(source, path):
                        raise UsageError(f"{video.output} would overwrite the source {name}",
                                         hint="choose another output")
                for folder in {video.store.folder, video.partial}:
                    if _inside(source, folder):
                        raise UsageError(
                            f"the source {name} lies in {folder}, which this run writes and may clear",
                            hint="copy the source somewhere else first, or choose another output",
                        )

    def _lock(self) -> None:
        for video in self.videos:
            for path in self._paths(video):
                lock = OutputLock(path)
                lock.acquire()
                self._locks.append(lock)

    def _unlock(self) -> None:
        while self._locks:
            self._locks.pop().release()

    def _foreign(self, folder: Path, survey: StoreSurvey, what: str) -> ForeignFilesError:
        return foreign_files_error(folder, survey, what)

    def _inspect(self, video: VideoState) -> None:
        """Decide where this video's frames go and what an earlier run left (no changes)."""
        out, mode = video.output, self.mode
        if video.kind == "frames":
            if out.exists() and not out.is_dir():
                raise OutputError(f"{str(out)!r} is a file, but the output folder must go there")
            main = FrameStore(out).survey()
            if main.foreign:
                raise self._foreign(out, main, "the output folder")
            part_store = FrameStore(video.partial)
            part = part_store.survey()
            if part.exists and not part.is_dir:
                raise OutputError(f"{str(video.partial)!r} is a file, but a partial frames folder must go there")
            if part.foreign:
                raise self._foreign(video.partial, part, "the folder")
            if mode == "new":
                if main.frames or part.frames:
                    where = out if main.frames else video.partial
                    raise OutputExistsError(f"{str(where)!r} already holds frames of an earlier run",
                                            hint="use --resume to continue that run, or --force to start over")
            elif mode == "force":
                video.swap = bool(main.frames)
            else:  # resume: an interrupted --force run continues in its partial folder
                video.swap = bool(part.frames)
            if video.swap:
                video.store = part_store
        else:
            folder = video.store.folder
            if folder.exists() and not folder.is_dir():
                raise OutputError(f"{str(folder)!r} is a file, but the frame store folder must go there")
            if out.is_dir():
                raise OutputError(f"{str(out)!r} is a folder; a {video.kind} file cannot be written there")
            survey = video.store.survey()
            if survey.foreign:
                raise self._foreign(folder, survey, "the frame store")
            if mode == "new":
                if os.path.lexists(out):  # a link too, even one that leads nowhere
                    raise OutputExistsError(f"{str(out)!r} already exists",
                                            hint="use --force to overwrite it, or --resume to continue its run")
                if survey.frames:
                    raise OutputExistsError(f"{str(folder)!r} already holds frames of an earlier run",
                                            hint="use --resume to continue that run, or --force to start over")
        video.survey = video.store.survey()
        manifest = build_manifest(
            source=video.job.source, size=tuple(video.job.start.shape[-2:]), seed=video.job.seed,
            video=video.job.index, model=self.model, weights=self.weights, zoom=video.job.config.to_dict(),
            fps=video.job.fps, controls=self.controls,
        )
        video.manifest = manifest
        if mode == "resume":
            self._inspect_resume(video)

    def _inspect_resume(self, video: VideoState) -> None:
        count = video.store.count()
        survey = video.survey
        assert survey is not None
        if count == 0:
            if video.kind != "frames" and video.output.exists():
                raise UsageError(
                    f"{video.output} exists and there are no frames in {video.store.folder} to resume from "
                    "(its run finished, or the frames were removed)",
                    hint="use --force to make it again",
                )
            return
        old = survey.manifest
        if not is_zoom_manifest(old):
            what = old.get("format") if isinstance(old, dict) else None
            raise UsageError(
                f"cannot resume {video.output}: {video.store.folder} holds frames of "
                f"{what!r}, not of dreamer zoom" if what else
                f"cannot resume {video.output}: {video.store.folder} has no dreamer zoom manifest",
                hint="use --force to start over, or another output",
            )
        problem = resume_problem(old, video.manifest, count, video.job.config.ramped)
        if problem:
            raise UsageError(
                f"cannot resume {video.output}: the settings differ from the run that made its "
                f"{count} frames: {problem}",
                hint="run again with the first run's settings, or use --force to start over",
            )
        if "partial" in old:
            video.manifest["partial"] = old["partial"]
        done = min(count, video.frames)
        if done < video.frames:
            try:
                last = video.store.read(done - 1)
            except ImageError as exc:
                raise ImageError(
                    f"cannot resume {video.output}: frame {done - 1} in {video.store.folder} cannot be read "
                    f"({exc.message})",
                    hint=f"delete that frame (and any after it) to resume from frame {done - 2}, or use --force",
                ) from None
            h, w = video.job.start.shape[-2:]
            if last.shape[:2] != (h, w):
                raise UsageError(
                    f"cannot resume {video.output}: frame {done - 1} is {last.shape[1]}x{last.shape[0]}, "
                    f"but the source makes {w}x{h} frames",
                    hint="use --force to start over",
                )
            video.start = frame_to_tensor(last)
        video.done = done

    def _prepare(self, video: VideoState) -> None:
        """Clear what `force` replaces (dreamer's files only), create the store, write its manifest."""
        store = video.store
        survey = video.survey or store.survey()
        if self.mode != "resume" and survey.ours:
            old_partial = video.partial
            if video.kind != "frames" and partial_is_ours(old_partial, survey.manifest):
                with contextlib.suppress(OSError):
                    old_partial.unlink()  # the partial result of the run being replaced
            store.clear()
        try:
            video.created = not store.folder.exists()
            store.folder.mkdir(exist_ok=True)
        except OSError as exc:
            from ..io.atomic import os_error_message

            raise OutputError(os_error_message(store.folder, exc)) from exc
        video.prepared = True
        store.write_manifest(video.manifest)  # also proves the folder is writable

    def _cleanup_unused(self) -> None:
        """Leave no trace where no frame was made: remove the frame store folders this session
        created, and its manifest from folders that had none before."""
        for video in self.videos:
            if video.store.count() or not video.prepared:
                continue
            if video.created:
                video.store.clear(remove_folder=True)
            elif video.survey is not None and video.survey.manifest is None:
                video.store.clear(remove_folder=False)

    def close(self) -> None:
        """Release the locks; remove frame stores made by this session that hold no frame."""
        self._cleanup_unused()
        self._unlock()
        self._open = False

    def __enter__(self) -> ZoomSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running -----------------------------------------------------------------------------

    @property
    def todo(self) -> list[VideoState]:
        """The videos with frames still to make."""
        return [v for v in self.videos if v.status != "finished" and v.done < v.frames]

    def size_warnings(self, network) -> list[str]:
        """A warning for each video whose frames are too small for all of a dream's octaves;
        an `ImageError` naming the video when one is too small for the network at all."""
        from ..loops import octave_warning

        warnings: list[str] = []
        for video in self.todo:
            h, w = video.job.start.shape[-2:]
            for config in video.job.config.dreams:
                try:
                    message = octave_warning(video.name, (int(h), int(w)), config, network.min_size)
                except DreamerError as exc:
                    raise _located(video.name, exc) from None
                if message and message not in warnings:
                    warnings.append(message)
        return warnings

    def frame_metadata(self, video: VideoState, index: int, network=None) -> dict[str, str]:
        """The PNG text chunks of frame `index` of `video` (settings, seed, zoom step)."""
        from ..io.metadata import build_metadata

        zoom = video.job.config
        config = zoom.dream_at(index) if index > 0 else None
        preset = octaves = None
        if config is not None:
            stage = ((index - 1) // zoom.cycle_every) % len(zoom.dreams)
            presets = video.job.presets
            preset = presets[stage] if stage < len(presets) else None
            if network is not None:
                from ..loops import plan_octaves

                size = tuple(int(n) for n in video.job.start.shape[-2:])
                octaves = len(plan_octaves(size, config.octaves, config.octave_scale, network.min_size).sizes)
        return build_metadata(
            config, model=network.name if network else self.model,
            weights=network.weights if network else self.weights,
            device=str(network.device) if network else "cpu", source=video.job.source,
            seed=frame_seed(video.job.seed, video.job.index, index), preset=preset, octaves_used=octaves,
            frame=index, video=video.job.index, zoom=zoom.feedback_at(index)[0] if index > 0 else None,
        )

    def record(self, video: VideoState, index: int, image: np.ndarray, network=None) -> None:
        """Write frame `index` of `video` (uint8 (H,W,3)) into its store. For callers that make
        frames themselves; `run` uses it for every frame."""
        self._check_open()
        video.store.write(index, image, self.frame_metadata(video, index, network))
        video.made += 1

    def finish(self, video: VideoState) -> Path:
        """Complete `video` from its store: check that every frame is there, encode (or move the
        frames folder into place), verify the result, then remove the store (unless
        `keep_frames`) and any partial result of its run. Returns the output path."""
        self._check_open()
        count = video.store.count()
        if count < video.frames:
            video.status = "failed"
            raise OutputError(
                f"{video.output} is not finished: {video.store.folder} holds {count} of its {video.frames} frames",
                hint="run the same command with --resume to make the rest",
            )
        if video.kind == "frames":
            if video.swap:
                self._swap_into_place(video)
            stored, _ = count_frames(video.output, "frames")
            if stored < video.frames:
                video.status = "failed"
                raise OutputError(f"{video.output} holds {stored} frames, not {video.frames}")
        else:
            encode(video.store.paths(video.frames), video.output, fps=video.job.fps, kind=video.kind,
                   expect=video.frames)
            if partial_is_ours(video.partial, video.store.read_manifest()):
                with contextlib.suppress(OSError):
                    video.partial.unlink()
            if not self.keep_frames:
                video.store.clear(remove_folder=True)
        video.status = "finished"
        return video.output

    def _swap_into_place(self, video: VideoState) -> None:
        """Replace a frames-folder output by the new frames made in its partial folder."""
        video.store = swap_frames_folder(video.output, video.store.folder)
        video.swap = False

    def interrupted(self) -> list[VideoState]:
        """After an interruption or a failure: write a partial result of each unfinished video
        that has frames (never over its output, never over a file dreamer did not write), and
        return those videos with ``partial_written`` / ``note`` saying where their frames are."""
        out = []
        for video in self.videos:
            if video.status == "finished":
                continue
            count = video.store.count()
            if count == 0:
                continue
            if video.status == "pending":
                video.status = "interrupted"
            video.note = f"{count} of {video.frames} frames are in {video.store.folder}"
            if video.kind != "frames":
                self._write_partial(video, count)
            out.append(video)
        return out

    def _write_partial(self, video: VideoState, count: int) -> None:
        manifest = video.store.read_manifest() or video.manifest
        if video.partial.exists() and not partial_is_ours(video.partial, manifest):
            video.note += f" (no partial video: {video.partial} exists and dreamer did not write it)"
            return
        try:
            encode(video.store.paths(count), video.partial, fps=video.job.fps, kind=video.kind, expect=count)
        except DreamerError as exc:
            video.note += f" (no partial video: {exc.message})"
            return
        video.partial_written = video.partial
        with contextlib.suppress(DreamerError, OSError):
            video.store.write_manifest(dict(manifest, partial=partial_record(video.partial)))

    def run(self, network, *, batch_size: int | None = None, on_event: Callable[[ZoomEvent], None] | None = None,
            dream: Callable[..., torch.Tensor] | None = None) -> list[VideoState]:
        """Make every remaining frame (videos of one size and dream setting batched together,
        see `zoom_frames`), writing each as it is made, and finish each video when its last
        frame is written. Returns the videos. Finished-on-arrival videos (resumed with all
        frames made) are finished first.

        On KeyboardInterrupt or any error, `interrupted()` writes the partial results, then the
        exception propagates; every finished frame stays in its store for a resume."""
        self._check_open()
        emit = on_event or (lambda event: None)
        try:
            for video in self.videos:
                if video.status != "finished" and video.done >= video.frames:
                    self.finish(video)
                    emit(ZoomEvent("finished", video))
            todo = self.todo
            if not todo:
                return self.videos
            zooms = [ZoomVideo(v.start, v.job.config, seed=v.job.seed, index=v.job.index, done=v.done) for v in todo]
            for frame in zoom_frames(zooms, network, batch_size=batch_size, dream=dream):
                video = todo[frame.video]
                self.record(video, frame.index, frame.image, network)
                emit(ZoomEvent("frame", video, frame.index))
                if frame.index == video.frames - 1:
                    self.finish(video)
                    emit(ZoomEvent("finished", video))
        except BaseException:
            for video in self.interrupted():
                if video.partial_written is not None:
                    with contextlib.suppress(Exception):
                        emit(ZoomEvent("partial", video))
            raise
        return self.videos

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("open the session first (session.open() or `with ZoomSession(...)`)")


def make_zoom_video(
    source: str | os.PathLike | torch.Tensor,
    output: str | os.PathLike,
    *,
    network,
    config: ZoomConfig = ZoomConfig(),
    seed: int = 0,
    fps: float = 30.0,
    size: int | None = None,
    max_pixels: int | None = None,
    resume: bool = False,
    force: bool = False,
    keep_frames: bool = False,
    on_event: Callable[[ZoomEvent], None] | None = None,
) -> Path:
    """Make one zoom video file and return its path.

    `source`: an image file, ``"noise:WIDTHxHEIGHT"`` (seeded by `seed`), or a (1,3,H,W)
    tensor in [0,1]; `size` scales its longest side first; `max_pixels` limits its size.
    `network`: a loaded `Network`. `resume` continues an interrupted run of the same
    settings; `force` replaces an earlier output (never both). Ctrl-C leaves the frames in
    the store and a partial video beside `output` (see `ZoomSession`).
    """
    if resume and force:
        raise UsageError("give resume or force, not both")
    from ..io.images import load_source

    source_path: Path | None = None
    if isinstance(source, torch.Tensor):
        start, text = source, "tensor"
        if start.dim() == 3:
            start = start[None]
    else:
        text = os.fspath(source)
        start, source_path = load_source(text, size=size, seed=frame_seed(seed, 0, 0), max_pixels=max_pixels)
    job = ZoomJob(start, Path(output), config, seed=seed, index=0, fps=fps, source=text, source_path=source_path)
    mode: Mode = "resume" if resume else "force" if force else "new"
    with ZoomSession([job], model=network.name, weights=network.weights, mode=mode,
                     keep_frames=keep_frames) as session:
        session.size_warnings(network)
        session.run(network, on_event=on_event)
    return Path(output)
