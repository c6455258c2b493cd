"""Zoom videos as Ray work: which videos go together, and how a worker makes and resumes them.

**Identical frames.** A single-process run (`zoom_frames` over all videos) dreams, at each
frame, the videos whose next frames share a size and dream settings as one batch (`batch_size`
at most). A batch's frames equal its videos made one by one only up to float rounding, so the
videos are split into units exactly along those batches: `partition` replays the single-process
run's batching (with a stand-in dream, on tiny stand-in images) and joins every two videos that
ever share a batch. Each unit then batches its videos exactly as the single-process run did, and
every frame comes out bit for bit the same (same software and device type). Without a batch size,
all same-size videos with the same settings are one unit; `batch_size` splits them.

**Resuming.** Each video writes its frames to its frame store (one atomic write each) on
storage every worker sees. A unit run again after its worker died starts from the last frame
that *every* one of its videos has finished in the batch order (`resume_point`), so the
batches, and the frames, are those of an uninterrupted run; at most one frame per video is made
again (and rewritten with the same pixels).

**Finishing.** Workers only make and store frames. The driver's `ZoomSession` (which holds the
locks, the manifests and the partial results) finishes each video - encodes it from the shared
frame store, verifies it, removes the store - once its unit's result is in, so a unit run again
never finds a finished video's store gone (`run_session`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DreamerError
from .runner import Event, FrameDone, JobFailed, JobFinished, UnitResult, UnitStarted, failure_message

__all__ = [
    "ZoomTask", "ZoomUnit", "partition", "resume_point", "zoom_units", "session_tasks", "check_sizes", "run_session",
]


@dataclass(frozen=True, eq=False)
class ZoomTask:
    """One video of an open `ZoomSession`, as a worker makes it (plain data, sent to the worker).

    - ``job``: its position in ``session.videos`` (events and reports name it so).
    - ``video``: the session's `dreamer.zoom.session.ZoomJob` (config, seed, index, fps, source,
      name), its ``start`` being the frame the run continues from: the source when ``done`` is
      0, else frame ``done - 1``.
    - ``store``: the frame store folder the frames go to, on storage every worker sees;
      ``kind``: mp4, gif, webp or frames; ``done``: frames in the store when the run began.
    - ``model``, ``weights``: as the session records them (frame metadata).
    """

    job: int
    video: Any  # dreamer.zoom.session.ZoomJob
    store: str
    kind: str
    done: int = 0
    model: str = ""
    weights: str = ""

    @property
    def name(self) -> str:
        return self.video.name

    @property
    def config(self) -> Any:
        return self.video.config

    @property
    def frames(self) -> int:
        return self.video.config.frames

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.video.start.shape[-2]), int(self.video.start.shape[-1]))


def resume_point(start: Sequence[int], stored: Sequence[int], frames: Sequence[int]) -> list[int]:
    """Frames each video of a unit counts as done when the unit runs again.

    `start`: frames done when the unit was first handed out; `stored`: frames in each store now;
    `frames`: each video's length. The unit's batches advance every unfinished video by one frame
    per round; the result is the state after the last round that every video finished (or
    `start` when none did), so running from it repeats the uninterrupted run's batches.
    """
    if not len(start) == len(stored) == len(frames):
        raise ValueError("start, stored and frames must have one entry per video")
    if any(s < d for s, d in zip(stored, start)):
        raise ValueError("a frame store holds fewer frames than when the unit started")
    first = [max(d, 1) for d in start]  # the first frame each video dreams
    behind = [s - p for s, p, f in zip(stored, first, frames) if s < f]
    if not behind:
        return list(frames)
    rounds = min(behind)
    if rounds < 0:
        return list(start)
    return [min(f, p + rounds) if d < f else d for p, f, d in zip(first, frames, start)]


def partition(tasks: Sequence[ZoomTask], batch_size: int | None = None) -> list[list[int]]:
    """Groups of tasks (positions in `tasks`, in order) that never share a batch with another
    group in a single-process `zoom_frames` run over all of `tasks` with `batch_size`.

    The run is replayed with a dream that returns its input, on 2 x (2 + k) pixel stand-ins for
    the k-th distinct frame size, so the rule is `zoom_frames`' own; it costs microseconds per frame.
    """
    import torch

    from ..models.network import Network
    from ..zoom.feedback import ZoomVideo, zoom_frames

    sizes: dict[tuple[int, int], int] = {}
    videos = []
    for task in tasks:
        k = sizes.setdefault(task.size, len(sizes))
        videos.append(ZoomVideo(torch.zeros(1, 3, 2, 2 + k), task.config, seed=task.video.seed,
                                index=task.video.index, done=task.done))
    parent = list(range(len(tasks)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    batches = [0]

    def dream(images, network, config, seeds=None, **_: Any):
        batches[0] += 1
        return images

    first_of: dict[int, int] = {}
    standin = Network.from_module(torch.nn.Identity(), name="plan")
    for frame in zoom_frames(videos, standin, batch_size=batch_size, dream=dream):
        if frame.index == 0:
            continue  # frame 0 is the source, never dreamed
        batch = batches[0]
        if batch in first_of:
            parent[root(frame.video)] = root(first_of[batch])
        else:
            first_of[batch] = frame.video
    groups: dict[int, list[int]] = {}
    for i in range(len(tasks)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


@dataclass(frozen=True, eq=False)
class ZoomUnit:
    """Videos that one worker makes together (see `partition`), in the single-process order.
    The worker makes and stores their frames; the driver finishes the videos (`settle_session`).

    `dream` replaces the engine's dream on the worker (same signature), as in `zoom_frames`.
    """

    number: int
    tasks: tuple[ZoomTask, ...]
    batch_size: int | None = None
    dream: Callable | None = field(default=None, repr=False)

    @property
    def job_ids(self) -> tuple[int, ...]:
        return tuple(task.job for task in self.tasks)

    @property
    def cost(self) -> float:
        """Pixels still to dream: the largest units are handed out first."""
        return float(sum((t.frames - t.done) * t.size[0] * t.size[1] for t in self.tasks))

    def frames(self) -> dict[int, tuple[int, int]]:
        return {t.job: (t.done, t.frames) for t in self.tasks}

    def run(self, network, emit: Callable[[Event], None], stopping: Callable[[], bool]) -> UnitResult:
        """Make (or go on making) the unit's frames on `network` (a Network or PreparedNetwork).

        Returns the videos whose frames are all stored as ``finished`` (the driver encodes
        them), those that failed with their messages, and ``stopped`` if asked to stop."""
        from ..backend import prepare
        from ..io.video import FrameStore, partial_path
        from ..zoom.feedback import ZoomVideo, frame_to_tensor, zoom_frames
        from ..zoom.session import VideoState, ZoomSession

        prepared = prepare(network)
        result = UnitResult()
        tasks = self.tasks
        stores = [FrameStore(Path(t.store)) for t in tasks]

        def fail(i: int, exc: BaseException) -> None:
            message, code = failure_message(exc)
            if not message.startswith(f"{tasks[i].name}:"):
                message = f"{tasks[i].name}: {message}"
            if tasks[i].job not in result.failed:
                result.failed[tasks[i].job] = (message, code)
                emit(JobFailed(tasks[i].job, message, code))

        for task, store in zip(tasks, stores):
            if not store.folder.is_dir():
                message = (f"{task.name}: the frame store {task.store} is not visible on worker host "
                           f"{socket.gethostname()}: outputs must be on storage every node sees at the same path")
                for other in tasks:
                    result.failed[other.job] = (message, 1)
                return result
        try:
            done = resume_point([t.done for t in tasks], [s.count() for s in stores], [t.frames for t in tasks])
        except ValueError:
            for task in tasks:
                result.failed[task.job] = (f"{task.name}: frames were removed from {task.store} during the run", 1)
            return result
        emit(UnitStarted(self.number, done=tuple((t.job, d) for t, d in zip(tasks, done))))

        # the session's own rule for each frame's metadata (nothing here opens or locks it)
        states = [VideoState(job=t.video, kind=t.kind, store=store, partial=partial_path(t.video.output))
                  for t, store in zip(tasks, stores)]
        session = ZoomSession([t.video for t in tasks], model=tasks[0].model, weights=tasks[0].weights)
        videos = []
        for i, (task, store, d) in enumerate(zip(tasks, stores, done)):
            start = task.video.start
            if d != task.done:
                try:
                    start = frame_to_tensor(store.read(d - 1))
                except DreamerError as exc:
                    fail(i, exc)  # kept in its batches with a stand-in frame, so the others' frames do not change
            videos.append(ZoomVideo(start, task.config, seed=task.video.seed, index=task.video.index, done=d))
        live = set()
        for i, (task, d) in enumerate(zip(tasks, done)):
            if d < task.frames:
                live.add(i)
            elif task.job not in result.failed:
                result.finished[task.job] = str(task.video.output)
        made = [0] * len(tasks)  # dreamed frames per video in this run: equal for all live ones between rounds
        if stopping():
            result.stopped = True
            return result
        try:
            for frame in zoom_frames(videos, prepared, batch_size=self.batch_size, dream=self.dream):
                i = frame.video
                task = tasks[i]
                if task.job not in result.failed:
                    try:
                        metadata = session.frame_metadata(states[i], frame.index, prepared.network)
                        stores[i].write(frame.index, frame.image, metadata)
                        emit(FrameDone(task.job, frame.index))
                    except DreamerError as exc:
                        fail(i, exc)  # the video stays in its batches, so the others' frames do not change
                if frame.index == 0:
                    continue
                made[i] += 1
                if frame.index == task.frames - 1:
                    live.discard(i)
                    if task.job not in result.failed:
                        result.finished[task.job] = str(task.video.output)
                if live and len({made[k] for k in live}) == 1 and stopping():
                    result.stopped = True  # between two rounds: every store ends on the same round
                    return result
        except Exception as exc:
            for i in sorted(live):
                fail(i, exc)
        return result

    def abandon(self) -> None:
        """On the driver, when the unit stopped without finishing (its worker killed after Ctrl-C,
        or lost too often): remove frames made after the last round every video finished (at
        most one per video, all made by this run), so a later ``--resume`` batches exactly like
        an uninterrupted run."""
        from ..io.video import FrameStore

        stores = [FrameStore(Path(t.store)) for t in self.tasks]
        counts = [store.count() for store in stores]
        try:
            done = resume_point([t.done for t in self.tasks], counts, [t.frames for t in self.tasks])
        except ValueError:
            return
        for store, count, keep in zip(stores, counts, done):
            for index in range(count - 1, keep - 1, -1):  # from the end, so the count stays consistent
                store.frame_path(index).unlink(missing_ok=True)


def zoom_units(tasks: Sequence[ZoomTask], *, batch_size: int | None = None,
               dream: Callable | None = None) -> list[ZoomUnit]:
    """The units of `tasks` (see `partition`), numbered from 0; tasks must be numbered distinctly."""
    if len({t.job for t in tasks}) != len(tasks):
        raise ValueError("job numbers must be distinct")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError("batch_size", batch_size, "an integer >= 1, or None for no limit")
    return [ZoomUnit(n, tuple(tasks[i] for i in group), batch_size, dream)
            for n, group in enumerate(partition(tasks, batch_size))]


# --- the driver's side: a ZoomSession made on the cluster -------------------------------------------


def session_tasks(session) -> list[ZoomTask]:
    """A task for each video of the open `session` with frames still to make."""
    import dataclasses

    tasks = []
    for number, video in enumerate(session.videos):
        if video in session.todo:
            job = dataclasses.replace(video.job, start=video.start.detach().cpu())
            tasks.append(ZoomTask(number, job, str(video.store.folder.absolute()), video.kind, video.done,
                                  session.model, session.weights))
    return tasks


def check_sizes(session, min_size: int) -> tuple[list[str], dict[int, DreamerError]]:
    """Warnings for videos too small for all their octaves, and the videos too small for the
    network at all (by position), each checked on its own (`octave_warning`, as the session does)."""
    from ..loops import octave_warning

    warnings: list[str] = []
    bad: dict[int, DreamerError] = {}
    for number, video in enumerate(session.videos):
        if video not in session.todo:
            continue
        h, w = video.job.start.shape[-2:]
        for config in video.job.config.dreams:
            try:
                message = octave_warning(video.name, (int(h), int(w)), config, min_size)
            except DreamerError as exc:
                if not exc.message.startswith(f"{video.name}:"):
                    exc.message = f"{video.name}: {exc.message}"
                    exc.args = (exc.message,)
                bad[number] = exc
                break
            if message and message not in warnings:
                warnings.append(message)
    return warnings, bad


def run_session(session, pool, *, batch_size: int | None = None, dream: Callable | None = None,
                on_event: Callable | None = None, skip: dict[int, DreamerError] | None = None,
                max_attempts: int = 3, stop_grace: float = 30.0):
    """Make the videos of the open `session` on the workers of `pool` and finish them.

    Videos already complete are finished here first; `skip` (position -> error) fails videos
    without running them. Each unit's videos are finished on the driver (encoded from the
    shared frame stores, verified, stores removed: `ZoomSession.finish`) once the unit's result
    is in, so a worker that dies never finds a finished video's store gone. After Ctrl-C or
    failures, `session.interrupted()` writes the partial videos; Ctrl-C then raises
    `RunInterrupted`. Returns the `RunReport` (jobs numbered by position in ``session.videos``).
    """
    from .runner import run_units

    skip = dict(skip or {})
    before: list[Event] = []
    for number, video in enumerate(session.videos):
        if number in skip:
            video.status = "failed"
            before.append(JobFailed(number, str(skip[number]), skip[number].exit_code))
        elif video.status != "finished" and video.done >= video.frames:
            before.extend(_finish(session, number))
    tasks = [t for t in session_tasks(session) if t.job not in skip]
    units = zoom_units(tasks, batch_size=batch_size, dream=dream)

    def settle(unit: ZoomUnit, result: UnitResult) -> UnitResult:
        final = UnitResult(failed=dict(result.failed), stopped=result.stopped)
        for job in result.failed:
            session.videos[job].status = "failed"
        for job in result.finished:
            for event in _finish(session, job):
                if isinstance(event, JobFinished):
                    final.finished[job] = event.output
                else:
                    final.failed[job] = (event.message, event.exit_code)
        return final

    try:
        report = run_units(units, pool, settle=settle, before=before, on_event=on_event,
                           max_attempts=max_attempts, stop_grace=stop_grace)
    except BaseException:
        session.interrupted()
        raise
    if any(j.status != "finished" for j in report.jobs):
        session.interrupted()
    return report


def _finish(session, number: int) -> list[Event]:
    video = session.videos[number]
    try:
        output = session.finish(video)
    except DreamerError as exc:
        message = str(exc) if exc.message.startswith(f"{video.name}:") else f"{video.name}: {exc}"
        return [JobFailed(number, message, exc.exit_code)]
    return [JobFinished(number, str(output))]
