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
again (and rewritten with the same pixels). Frame stores are cleared by the driver only after
the unit's result is in, so a retry never finds a finished video without its frames.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DreamerError
from .runner import Event, FrameDone, JobFailed, JobFinished, UnitResult, UnitStarted

__all__ = ["ZoomJob", "ZoomUnit", "partition", "resume_point", "zoom_units"]


@dataclass(frozen=True, eq=False)
class ZoomJob:
    """One zoom video, as a worker needs it. Plain data, sent to the worker.

    - ``job``: its number in the run (events and reports name it so); ``where``: how messages
      name it (``jobs.txt:3`` or the source).
    - ``output``: the video (.mp4/.gif/.webp) or frames folder; ``store``: its frame store folder;
      ``kind``: mp4, gif, webp or frames. Absolute paths on storage all workers see.
    - ``config``, ``seed``, ``index``: as `ZoomVideo` takes them (``index`` makes the seeds).
    - ``start``: frame 0 as (H, W, 3) uint8 (the quantised source), needed when ``done`` is 0;
      ``size``: (height, width) of every frame; ``done``: frames already in the store.
    - ``fps``, ``keep_frames``: for the finished video; ``source``, ``model``, ``weights`` are
      recorded in each frame's metadata.
    """

    job: int
    where: str
    output: str
    store: str
    kind: str
    config: Any  # ZoomConfig
    seed: int
    index: int
    size: tuple[int, int]
    fps: float
    start: np.ndarray | None = None
    done: int = 0
    keep_frames: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if self.done == 0 and self.start is None:
            raise ValueError(f"{self.where}: a job that starts from frame 0 needs its start frame")
        if self.start is not None and tuple(self.start.shape[:2]) != tuple(self.size):
            raise ValueError(f"{self.where}: start is {self.start.shape[:2]}, size says {self.size}")

    @property
    def frames(self) -> int:
        return self.config.frames


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


def partition(jobs: Sequence[ZoomJob], batch_size: int | None = None) -> list[list[int]]:
    """Groups of jobs (positions in `jobs`, in order) that never share a batch with another group
    in a single-process `zoom_frames` run over all of `jobs` with `batch_size`.

    The run is replayed with a dream that returns its input, on 2 x (2 + k) pixel stand-ins for
    the k-th distinct frame size, so the rule is `zoom_frames`' own; it costs microseconds per frame.
    """
    import torch

    from ..models.network import Network
    from ..zoom.feedback import ZoomVideo, zoom_frames

    sizes: dict[tuple[int, int], int] = {}
    videos = []
    for job in jobs:
        k = sizes.setdefault(tuple(job.size), len(sizes))
        videos.append(ZoomVideo(torch.zeros(1, 3, 2, 2 + k), job.config, seed=job.seed, index=job.index,
                                done=job.done))
    parent = list(range(len(jobs)))

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
    for frame in zoom_frames(videos, Network.from_module(torch.nn.Identity(), name="plan"), batch_size=batch_size, dream=dream):
        batch = batches[0]
        if frame.index == 0:
            continue  # frame 0 is the source, never dreamed
        if batch in first_of:
            parent[root(frame.video)] = root(first_of[batch])
        else:
            first_of[batch] = frame.video
    groups: dict[int, list[int]] = {}
    for i in range(len(jobs)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _frame_metadata(job: ZoomJob, index: int, network) -> dict[str, str]:
    from ..io.metadata import build_metadata
    from ..zoom.feedback import frame_seed

    config = job.config.dream_at(index) if index > 0 else None
    return build_metadata(
        config, model=network.name, weights=network.weights, device=str(network.device), source=job.source,
        seed=frame_seed(job.seed, job.index, index), frame=index, video=job.index,
        zoom=job.config.feedback_at(index)[0] if index > 0 else None,
    )


def _message(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, DreamerError):
        return str(exc), exc.exit_code
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out of device memory; try a smaller --size or --batch-size, or --tile 512", 1
    raise exc


@dataclass(frozen=True, eq=False)
class ZoomUnit:
    """Videos that one worker makes together (see `partition`), in the single-process order.

    `dream` replaces the engine's dream on the worker (same signature), as in `zoom_frames`.
    """

    number: int
    jobs: tuple[ZoomJob, ...]
    batch_size: int | None = None
    dream: Callable | None = field(default=None, repr=False)

    @property
    def job_ids(self) -> tuple[int, ...]:
        return tuple(job.job for job in self.jobs)

    @property
    def cost(self) -> float:
        """Pixels still to dream: the largest units are handed out first."""
        return float(sum((job.frames - job.done) * job.size[0] * job.size[1] for job in self.jobs))

    def frames(self) -> dict[int, tuple[int, int]]:
        return {job.job: (job.done, job.frames) for job in self.jobs}

    def run(self, network, emit: Callable[[Event], None], stopping: Callable[[], bool]) -> UnitResult:
        """Make (or go on making) the unit's videos on `network`; encode each finished one."""
        from ..io.video import FrameStore, encode
        from ..zoom.feedback import ZoomVideo, frame_to_tensor, zoom_frames

        result = UnitResult()
        jobs = self.jobs
        stores = [FrameStore(Path(job.store)) for job in jobs]

        def fail(i: int, exc: BaseException) -> None:
            message, code = _message(exc)
            if jobs[i].job not in result.failed:
                result.failed[jobs[i].job] = (f"{jobs[i].where}: {message}", code)
                emit(JobFailed(jobs[i].job, f"{jobs[i].where}: {message}", code))

        def finish(i: int) -> None:
            job = jobs[i]
            try:
                if job.kind != "frames":
                    encode(stores[i].paths()[: job.frames], Path(job.output), fps=job.fps, kind=job.kind)
            except Exception as exc:
                fail(i, exc)
                return
            result.finished[job.job] = job.output
            emit(JobFinished(job.job, job.output))

        for job, store in zip(jobs, stores):
            if not store.folder.is_dir():
                message = (f"{job.where}: the frame store {job.store} is not visible on worker host "
                           f"{socket.gethostname()}: outputs must be on storage every node sees at the same path")
                for other in jobs:
                    result.failed[other.job] = (message, 1)
                return result
        try:
            done = resume_point([j.done for j in jobs], [s.count() for s in stores], [j.frames for j in jobs])
        except ValueError:
            for job in jobs:
                result.failed[job.job] = (f"{job.where}: frames were removed from {job.store} during the run", 1)
            return result
        emit(UnitStarted(self.number, done=tuple((job.job, d) for job, d in zip(jobs, done))))

        videos = []
        for i, (job, store, d) in enumerate(zip(jobs, stores, done)):
            try:
                start = job.start if d == 0 else store.read(d - 1)
            except DreamerError as exc:
                fail(i, exc)
                start = np.zeros((*job.size, 3), np.uint8)  # keeps the batches intact; nothing is written
            videos.append(ZoomVideo(frame_to_tensor(start, network.device), job.config, seed=job.seed,
                                    index=job.index, done=d))
        live = set()
        for i, (job, d) in enumerate(zip(jobs, done)):
            if d >= job.frames:
                if job.job not in result.failed:
                    finish(i)
            else:
                live.add(i)
        made = [0] * len(jobs)  # dreamed frames per video in this run: equal for all live ones between rounds
        if stopping():
            result.stopped = True
            return result
        try:
            for frame in zoom_frames(videos, network, batch_size=self.batch_size, dream=self.dream):
                i = frame.video
                job = jobs[i]
                if job.job not in result.failed:
                    try:
                        stores[i].write(frame.index, frame.image, _frame_metadata(job, frame.index, network))
                        emit(FrameDone(job.job, frame.index))
                    except DreamerError as exc:
                        fail(i, exc)  # the video stays in its batches, so the others' frames do not change
                if frame.index == 0:
                    continue
                made[i] += 1
                if frame.index == job.frames - 1:
                    live.discard(i)
                    if job.job not in result.failed:
                        finish(i)
                if len({made[k] for k in live}) <= 1 and live and stopping():
                    result.stopped = True  # between two rounds: every store ends on the same round
                    return result
        except Exception as exc:
            for i in sorted(live):
                fail(i, exc)
        return result

    def abandon(self) -> None:
        """On the driver, when the unit stopped without finishing (its worker killed after Ctrl-C,
        or lost too often): remove frames made after the last round every video finished (at
        most one per video), so a later ``--resume`` batches exactly like an uninterrupted run."""
        from ..io.video import FrameStore

        stores = [FrameStore(Path(job.store)) for job in self.jobs]
        counts = [store.count() for store in stores]
        try:
            done = resume_point([j.done for j in self.jobs], counts, [j.frames for j in self.jobs])
        except ValueError:
            return
        for store, count, keep in zip(stores, counts, done):
            for index in range(count - 1, keep - 1, -1):  # from the end, so the count stays consistent
                store.frame_path(index).unlink(missing_ok=True)

    def settle(self, result: UnitResult) -> None:
        """On the driver, once the result is in: remove the frame stores of finished videos
        (unless frames are the output or were asked to be kept)."""
        from ..io.video import FrameStore

        for job in self.jobs:
            if job.job in result.finished and job.kind != "frames" and not job.keep_frames:
                FrameStore(Path(job.store)).clear()


def zoom_units(jobs: Sequence[ZoomJob], *, batch_size: int | None = None,
               dream: Callable | None = None) -> list[ZoomUnit]:
    """The units of `jobs` (see `partition`), numbered from 0; jobs must be numbered distinctly."""
    if len({job.job for job in jobs}) != len(jobs):
        raise ValueError("job numbers must be distinct")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError("batch_size", batch_size, "an integer >= 1, or None for no limit")
    return [ZoomUnit(n, tuple(jobs[i] for i in group), batch_size, dream)
            for n, group in enumerate(partition(jobs, batch_size))]
