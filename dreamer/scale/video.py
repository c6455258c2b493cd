"""`dreamer video` inputs as Ray work: one video per unit, dreamed by the video library's own
session (`dreamer.video.session.dream_videos`) on a worker that keeps its loaded network.

**Unit = one video.** A single-process run dreams same-size videos as one batch per frame
step, and a batch gives its frames only up to float rounding of what each video gives alone;
a unit of several videos would also have to be resumed batch-aligned after a crash. Each
video is therefore its own unit, dreamed exactly as ``dreamer video VIDEO --batch 1`` (or a
run whose videos all differ in size) dreams it: bit for bit the same frames (same software,
same device type, and on the CPU the same torch thread count: CPU workers use `WorkerSpec.cpus`
threads, one by default). The video keeps its number in the whole run (`numbers=` of
`dream_videos`), which seeds its frames, so a ``--resume`` with or without Ray continues it.

**Resuming.** The worker's session writes each frame to the video's frame store (one atomic
write each) on storage every worker sees. A unit handed to another worker after its worker
died runs the session again with ``resume=True`` (`VideoUnit.again`): it continues after the
last stored frame, with the same frames as an uninterrupted run (the video library's resume
guarantee), and never starts over.

**Locks and finishing.** The driver holds every output's locks for the whole run (a lock of a
dead worker on another node could not be taken over); workers dream with ``lock=False``. A
worker's session encodes, verifies and puts the output in place, but keeps the frame store
(``keep_frames``): a worker that dies after that and before its result arrives has its unit
run again, which finds every frame and only encodes again. The driver removes the store once
the result is in (unless ``keep_frames``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import DreamerError, UsageError
from .runner import Event, FrameDone, JobFailed, UnitResult, UnitStarted, failure_message

__all__ = ["VideoTask", "VideoUnit", "video_units", "run_videos", "stored_frames"]


@dataclass(frozen=True)
class VideoTask:
    """One input video of the run (plain data, sent to a worker).

    ``job``: its position among the inputs (its video number: events name it, it seeds its
    frames); ``input``, ``output``: absolute paths on storage every worker sees; ``frames``:
    frames it will have; ``done``: frames stored when the run began; ``size``: (height, width).
    """

    job: int
    input: str
    output: str
    frames: int
    done: int = 0
    size: tuple[int, int] = (0, 0)


@dataclass(frozen=True, eq=False)
class VideoUnit:
    """One video for one worker, dreamed with `dream_videos` and these settings.

    ``mode``: ``new``, ``force`` or ``resume`` (a retried unit resumes, `again`); ``options``:
    keywords of `dream_videos` that choose the frames (start, end, size, max_pixels, fps,
    audio). ``watch(job, frame)`` is called on the worker after each frame (tests use it).
    """

    number: int
    task: VideoTask
    config: Any  # VideoConfig
    mode: str = "new"
    options: dict[str, Any] = field(default_factory=dict)
    watch: Callable[[int, int], None] | None = field(default=None, repr=False)

    @property
    def job_ids(self) -> tuple[int, ...]:
        return (self.task.job,)

    @property
    def cost(self) -> float:
        """Pixels still to dream: the largest videos are handed out first."""
        return float((self.task.frames - self.task.done) * self.task.size[0] * self.task.size[1])

    def frames(self) -> dict[int, tuple[int, int]]:
        return {self.task.job: (self.task.done, self.task.frames)}

    def again(self) -> VideoUnit:
        """The unit as it runs after its worker died: from its frame store."""
        return replace(self, mode="resume")

    def abandon(self) -> None:
        """Nothing to tidy: every stored frame is whole (atomic writes) and a ``--resume``
        continues after the last one."""

    def run(self, network, emit: Callable[[Event], None], stopping: Callable[[], bool]) -> UnitResult:
        """Dream (or go on dreaming) the video on `network`; its output is complete when the
        result says ``finished``."""
        from ..video.session import VideoInterrupted, VideoJob, dream_videos

        task = self.task
        output = Path(task.output)
        if not output.absolute().parent.is_dir():
            return UnitResult(failed={task.job: (
                f"{task.input}: the folder of {task.output} is not visible on worker host {socket.gethostname()}: "
                "outputs must be on storage every node sees at the same path", 1)})
        emit(UnitStarted(self.number, done=((task.job, stored_frames(output) if self.mode == "resume" else 0),)))

        def progress(p) -> None:
            emit(FrameDone(task.job, p.frame))
            if self.watch is not None:
                self.watch(task.job, p.frame)
            if stopping():
                raise KeyboardInterrupt  # the session keeps its frames and writes the partial video

        try:
            (result,) = dream_videos(
                [VideoJob(Path(task.input), output)], network, self.config, numbers=[task.job], lock=False,
                force=self.mode == "force", resume=self.mode == "resume", keep_frames=True, progress=progress,
                warn=lambda message: None, **self.options,
            )
        except VideoInterrupted:
            return UnitResult(stopped=True)
        except Exception as exc:  # noqa: BLE001  (bugs are raised again by failure_message)
            message, code = failure_message(exc)
            if not message.startswith(f"{task.input}:"):
                message = f"{task.input}: {message}"
            emit(JobFailed(task.job, message, code))
            return UnitResult(failed={task.job: (message, code)})
        return UnitResult(finished={task.job: str(result.output)})


def stored_frames(output: Path) -> int:
    """Frames an earlier run left for `output` (in its frame store, or a frames output's partial
    folder when that is where they went)."""
    from ..io.video import FrameStore, frame_store_path, output_kind, partial_path

    count = FrameStore(frame_store_path(output)).count()
    if output_kind(output) == "frames":
        count = FrameStore(partial_path(output)).count() or count
    return count


def _survey(number: int, job, config, *, min_size: int, start, end, size, max_pixels, fps, resume: bool,
            warn: Callable[[str], None]) -> VideoTask:
    """The video's task, read from its input with the library's own rules (frames, working
    size, octaves) before it is sent anywhere; a DreamerError fails this video only."""
    from ..io.images import DEFAULT_MAX_PIXELS
    from ..io.video_in import probe_video
    from ..loops import octave_warning
    from ..video.source import frame_range, working_size

    name = str(job.input)
    info = probe_video(job.input, fps=fps)
    first, stop, _ = frame_range(info.frames, info.fps, start, end, name=name)
    work = working_size(info.size, size=size, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, name=name)
    message = octave_warning(name, work, config.dream, min_size)
    if message:
        warn(message)
    frames = stop - first
    done = min(stored_frames(job.output), frames) if resume else 0
    return VideoTask(number, str(Path(job.input).absolute()), str(Path(job.output).absolute()), frames, done,
                     (int(work[0]), int(work[1])))


def video_units(tasks: Sequence[VideoTask], config, *, mode: str = "new", options: dict[str, Any] | None = None,
                watch: Callable[[int, int], None] | None = None) -> list[VideoUnit]:
    """One unit per task, numbered like the tasks."""
    return [VideoUnit(t.job, t, config, mode, dict(options or {}), watch) for t in tasks]


def run_videos(
    jobs: Sequence[Any],
    pool,
    config=None,
    *,
    start=None,
    end=None,
    size: int | None = None,
    max_pixels: int | None = None,
    fps: float | None = None,
    audio: bool = True,
    force: bool = False,
    resume: bool = False,
    keep_frames: bool = False,
    on_event: Callable | None = None,
    warn: Callable[[str], None] | None = None,
    watch: Callable[[int, int], None] | None = None,
    max_attempts: int = 3,
    stop_grace: float = 30.0,
    dream: Callable | None = None,
    controls: dict[str, Any] | None = None,
):
    """Dream `jobs` (`VideoJob`s or (input, output) pairs) on the workers of `pool`, as
    `dreamer.video.dream_videos` with the same keywords would in one process (one video at a
    time: see the module docstring), and return the `RunReport` (jobs numbered by position).

    Before any work, the rules between the videos are checked (UsageError for the whole run, as
    without Ray) and each video's input is read and its outputs locked; a video that fails
    there, or later on its worker, fails alone. Raises `RunInterrupted` on Ctrl-C after the
    workers stopped (every frame store stays resumable), ClusterError/RemoteError when the
    cluster cannot be used.
    """
    import warnings

    from ..io.locks import OutputLock
    from ..models import get_spec
    from ..video.frames import VideoConfig
    from ..video.session import VideoJob, check_paths, output_paths
    from ..video.source import parse_time
    from .runner import run_units

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
    check_paths(jobs)
    if config.uses_flow:
        from ..video.flow import require_cv2

        require_cv2()
    min_size = get_spec(config.dream.model).min_size
    options = dict(start=start, end=end, size=size, max_pixels=max_pixels, fps=fps, audio=audio)
    if dream is not None:  # the steered loop (controls), sent to the workers with the unit
        options["dream"] = dream
    if controls:
        options["controls"] = dict(controls)
    before: list[Event] = []
    tasks: list[VideoTask] = []
    locks: list[OutputLock] = []
    try:
        for number, job in enumerate(jobs):
            held = []
            try:
                task = _survey(number, job, config, min_size=min_size, start=start, end=end, size=size,
                               max_pixels=max_pixels, fps=fps, resume=resume, warn=warn)
                for path in output_paths(job.output):
                    held.append(OutputLock(path).acquire())
            except DreamerError as exc:
                for lock in held:
                    lock.release()
                message = exc.message if exc.message.startswith(f"{job.input}:") else f"{job.input}: {exc.message}"
                before.append(JobFailed(number, message, exc.exit_code))
                continue
            locks.extend(held)
            tasks.append(task)
        units = video_units(tasks, config, mode=mode, options=options, watch=watch)

        def settle(unit: VideoUnit, result: UnitResult) -> UnitResult:
            from ..io.video import FrameStore, frame_store_path, output_kind

            for job, output in result.finished.items():
                if not keep_frames and output_kind(Path(output)) != "frames":
                    FrameStore(frame_store_path(Path(output))).clear(remove_folder=True)
            return result

        return run_units(units, pool, settle=settle, before=before, on_event=on_event,
                         max_attempts=max_attempts, stop_grace=stop_grace)
    finally:
        for lock in reversed(locks):
            lock.release()
