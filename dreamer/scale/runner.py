"""Units of work on a Ray cluster: long-lived workers, a driver that feeds them, retries, progress.

- A **worker** is a Ray actor that loads the model once (`Worker.__init__`) and then runs unit
  after unit with the same network, whose prepared paths (folded copy, CUDA graphs) it keeps.
  It asks Ray for one GPU when the cluster has GPUs, otherwise `WorkerSpec.cpus` CPUs. A
  `WorkerPool`, held by the caller, keeps workers loaded from one run to the next.
- A **unit** is a picklable object with ``run(network, emit, stopping)``, executed on a worker;
  it reports what happens through ``emit(event)`` and returns a `UnitResult`. It must be safe to
  run again after a worker died half-way (zoom units resume from their frame stores).
- The **driver** (`run_units`) starts workers, hands each idle worker the largest unit left and
  collects events. A worker that dies (process killed, node lost) is dropped and its unit handed
  to another worker (a new one if none is idle), up to `max_attempts` times. Ray's own actor
  restarts and task retries are off: the driver decides, so a unit moves to a worker that is
  already loaded instead of waiting for a dead one to come back.
- Events reach the driver through a small mailbox actor; the driver deduplicates them (a unit
  run again repeats frames) and passes each new one, with a `ClusterProgress`, to `on_event`.
- Ctrl-C (KeyboardInterrupt) on the driver posts a stop request that units read through
  ``stopping()`` at their next safe point; the driver waits up to `stop_grace` seconds for them,
  kills the workers still busy, and raises `RunInterrupted` with the report.

Nothing here prints; Ray is imported inside the functions (it is an optional extra).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ConfigError, DreamerError
from .cluster import ClusterError, require_ray

__all__ = [
    "WorkerSpec", "Unit", "UnitResult", "Event", "WorkerReady", "UnitStarted", "FrameDone", "JobFinished",
    "JobFailed", "WorkerLost", "ClusterProgress", "JobReport", "RunReport", "RunInterrupted", "RemoteError",
    "failure_message",
    "Worker", "WorkerPool", "run_units",
]


@dataclass(frozen=True)
class WorkerSpec:
    """What each worker loads and what it asks the cluster for.

    - ``model``, ``weights``: as `dreamer.models.load_model` takes them; every node must be able
      to get the weights (a path must exist on every node; ``pretrained`` is downloaded by each
      node into its own torch hub cache).
    - ``device``: ``auto`` (one GPU per worker when the cluster has GPUs, else CPUs), ``cpu``
      (CPU workers even on a GPU cluster) or ``cuda`` (GPU workers; an error without GPUs).
    - ``cpus``: CPUs a CPU worker asks for, and the torch threads it uses.
    """

    model: str
    weights: str = "pretrained"
    device: str = "auto"
    cpus: int = 1

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError("device", self.device, "auto, cpu or cuda (Ray gives each worker its GPU)")
        if isinstance(self.cpus, bool) or not isinstance(self.cpus, int) or self.cpus < 1:
            raise ConfigError("cpus", self.cpus, "an integer >= 1 (CPUs per CPU worker)")


# --- events (plain data, sent from workers to the driver) -------------------------------------------


@dataclass(frozen=True)
class WorkerReady:
    """A worker loaded the model. ``worker``: host:pid; ``device``: where it dreams."""

    worker: str
    device: str


@dataclass(frozen=True)
class UnitStarted:
    """A worker began (``attempt`` 1) or took over (``attempt`` > 1) a unit; ``done`` lists
    (job, frames already finished) where it starts: a unit taken over continues from its frame
    stores. Units emit it first with ``attempt`` 0 and ``worker`` ""; the worker fills both in."""

    unit: int
    attempt: int = 0
    worker: str = ""
    done: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class FrameDone:
    """Frame ``frame`` (0-based) of job ``job`` is finished and stored."""

    job: int
    frame: int


@dataclass(frozen=True)
class JobFinished:
    """Job ``job`` is complete; its result is at ``output``."""

    job: int
    output: str


@dataclass(frozen=True)
class JobFailed:
    """Job ``job`` failed; the other jobs go on. ``exit_code`` as `DreamerError.exit_code`."""

    job: int
    message: str
    exit_code: int = 1
    detail: str | None = None  # the worker's traceback when the failure is a bug


@dataclass(frozen=True)
class WorkerLost:
    """A worker died while running ``unit`` (attempt ``attempt``); ``retried``: handed on."""

    unit: int
    attempt: int
    worker: str
    reason: str
    retried: bool


Event = WorkerReady | UnitStarted | FrameDone | JobFinished | JobFailed | WorkerLost


@dataclass
class UnitResult:
    """What a unit returns: outputs of finished jobs, messages of failed ones, and whether it
    stopped early because the driver asked (``stopped``)."""

    finished: dict[int, str] = field(default_factory=dict)
    failed: dict[int, tuple[str, int]] = field(default_factory=dict)
    stopped: bool = False


class Unit(Protocol):
    """Work for one worker (see the module docstring)."""

    number: int

    @property
    def job_ids(self) -> tuple[int, ...]: ...

    @property
    def cost(self) -> float: ...

    def frames(self) -> dict[int, tuple[int, int]]:
        """job -> (frames finished before this run, frames in all)."""

    def run(self, network: Any, emit: Callable[[Event], None], stopping: Callable[[], bool]) -> UnitResult:
        """On a worker: the work, with the worker's `PreparedNetwork` (kept across units)."""

    def abandon(self) -> None:
        """Called on the driver when the unit will not be run again in this run (its worker was
        killed at Ctrl-C, or died too often): leave its files ready to be resumed later."""

    # Optional: ``again() -> Unit``, the same unit (same number and jobs) as it is to run after its
    # worker died, e.g. resuming from its frame stores where the first try started over.


def failure_message(exc: BaseException) -> tuple[str, int]:
    """On a worker: the message and exit code of a video that failed with `exc`; bugs are
    raised again (they reach the driver as such)."""
    if isinstance(exc, DreamerError):
        return str(exc), exc.exit_code
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out of device memory; try a smaller --size or --batch, or --tile 512", 1
    raise exc


class RemoteError(DreamerError):
    """A DreamerError raised on a worker, carried back as plain data (its exit code kept)."""

    def __init__(self, message: str, *, exit_code: int = 1, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


# --- the worker (a Ray actor) --------------------------------------------------------------------


class Worker:
    """Loads the model once and prepares it once (`dreamer.backend.prepare`: the folded copy and
    CUDA graphs it makes are kept for every frame of every unit); runs units. Turned into a Ray
    actor by `WorkerPool`.

    A failure to load (weights missing on this node ...) is kept and reported by `info`, not
    raised, so that the driver can name the node and stop instead of restarting it for ever.
    """

    def __init__(self, spec: WorkerSpec, device: str) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.network = None
        self.error: tuple[str, int, str | None] | None = None
        try:
            import torch

            from ..backend import prepare
            from ..devices import resolve_device
            from ..models import load_model

            if device == "cpu":
                torch.set_num_threads(spec.cpus)
            self.network = prepare(load_model(spec.model, weights=spec.weights, device=resolve_device(device)))
        except DreamerError as exc:
            self.error = (exc.message, exc.exit_code, exc.hint)

    def info(self) -> dict[str, Any]:
        device = str(self.network.device) if self.network is not None else ""
        return {"worker": self.name, "device": device, "error": self.error}

    def run(self, unit: Unit, attempt: int, mailbox: Any) -> UnitResult:
        import ray

        if self.network is None:  # the driver stops before this (see `info`)
            raise RuntimeError(f"worker {self.name} has no model: {self.error}")
        last: list[Any] = [None]

        def emit(event: Event) -> None:
            if isinstance(event, UnitStarted):  # the unit says where it starts; the worker, who and which try
                event = dataclasses.replace(event, attempt=attempt, worker=self.name)
            last[0] = mailbox.put.remote(event)  # fire and forget; ordered per worker

        def stopping() -> bool:
            try:
                return bool(ray.get(mailbox.stopping.remote(), timeout=60))
            except Exception:  # the mailbox is gone (the driver too?): go on; the driver can still kill us
                return False

        result = unit.run(self.network, emit, stopping)
        if last[0] is not None:  # let the last events arrive before the result does
            ray.wait([last[0]], timeout=10)
        return result


class _Mailbox:
    """Between the driver and the workers of a run (a Ray actor that uses no CPU): events from
    every worker, taken in bulk by the driver, and the driver's request to stop."""

    def __init__(self) -> None:
        self.items: list[Event] = []
        self.stop_asked = False

    def put(self, *events: Event) -> None:
        self.items.extend(events)

    def take(self) -> list[Event]:
        items, self.items = self.items, []
        return items

    def stop(self) -> None:
        self.stop_asked = True

    def stopping(self) -> bool:
        return self.stop_asked


# --- progress and report ---------------------------------------------------------------------------


class ClusterProgress:
    """What the driver knows about a run, updated from events: jobs finished and failed, frames
    finished (each counted once, however often a retry remakes it), frames per second across
    the cluster over the last `window` seconds, and the ETA that rate gives."""

    def __init__(self, frames: dict[int, tuple[int, int]], *, window: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.window = window
        self.start = clock()
        self.done = {job: d for job, (d, _) in frames.items()}
        self.total = {job: t for job, (_, t) in frames.items()}
        self.finished: dict[int, str] = {}
        self.failed: dict[int, JobFailed] = {}
        self.workers: dict[str, str] = {}  # live workers: name -> device
        self.retries = 0
        self.made = 0  # frames made by this run (each once)
        self.began: float | None = None  # when the first unit started
        self._times: collections.deque[float] = collections.deque()

    @property
    def jobs_total(self) -> int:
        return len(self.total)

    @property
    def frames_total(self) -> int:
        return sum(self.total.values())

    @property
    def frames_done(self) -> int:
        return sum(self.done.values())

    @property
    def rate(self) -> float | None:
        """Dreamed frames per second over the last `window` seconds (None until work has gone
        on for a second)."""
        self._trim()
        if self.began is None:
            return None
        span = min(self.window, self.clock() - self.began)
        return len(self._times) / span if span >= 1.0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None while unknown; 0 when nothing is left)."""
        left = self.frames_total - self.frames_done
        if left <= 0:
            return 0.0
        rate = self.rate
        return left / rate if rate else None

    def _trim(self) -> None:
        cutoff = self.clock() - self.window
        while self._times and self._times[0] < cutoff:
            self._times.popleft()

    def apply(self, event: Event) -> bool:
        """Take in one event; False when it says nothing new (a repeat from a retried unit)."""
        if isinstance(event, FrameDone):
            if event.job in self.finished or event.job in self.failed:
                return False
            new = event.frame + 1 - self.done.get(event.job, 0)
            if new <= 0:
                return False
            self.done[event.job] = event.frame + 1
            self.made += new
            if event.frame > 0:  # frame 0 is the source: it costs nothing
                self._times.extend([self.clock()] * new)
                self._trim()
            return True
        if isinstance(event, JobFinished):
            if event.job in self.finished or event.job in self.failed:
                return False
            self.finished[event.job] = event.output
            self.done[event.job] = self.total.get(event.job, self.done.get(event.job, 0))
            return True
        if isinstance(event, JobFailed):
            if event.job in self.finished or event.job in self.failed:
                return False
            self.failed[event.job] = event
            self.total[event.job] = self.done.get(event.job, 0)  # its frames are no longer expected
            return True
        if isinstance(event, WorkerReady):
            self.workers[event.worker] = event.device
            return True
        if isinstance(event, UnitStarted):
            if self.began is None:
                self.began = self.clock()
            return True
        if isinstance(event, WorkerLost):
            self.workers.pop(event.worker, None)
            self.retries += int(event.retried)
            return True
        return True


@dataclass(frozen=True)
class JobReport:
    """How one job ended: ``finished`` (with ``output``), ``failed`` (with ``message`` and
    ``exit_code``) or ``unfinished`` (interrupted: its frame store can be resumed)."""

    job: int
    status: str
    output: str | None = None
    message: str | None = None
    exit_code: int = 0
    detail: str | None = None


@dataclass(frozen=True)
class RunReport:
    jobs: tuple[JobReport, ...]
    workers: int
    retries: int
    frames_made: int
    elapsed: float
    interrupted: bool = False

    @property
    def failed(self) -> tuple[JobReport, ...]:
        return tuple(j for j in self.jobs if j.status == "failed")

    @property
    def finished(self) -> tuple[JobReport, ...]:
        return tuple(j for j in self.jobs if j.status == "finished")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C on the driver: the cluster's work was stopped; ``report`` says where each job is."""

    def __init__(self, report: RunReport) -> None:
        super().__init__("interrupted")
        self.report = report


# --- the driver ----------------------------------------------------------------------------------------


def _worker_options(spec: WorkerSpec, resources: dict[str, float]) -> tuple[dict[str, Any], str, int]:
    """Ray options of one worker, its device, and how many such workers the cluster holds."""
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 0))
    if spec.device == "cuda" and gpus < 1:
        raise ClusterError("device cuda was asked for, but the Ray cluster has no GPUs",
                           hint="leave the device out (auto) to use the CPUs")
    if spec.device != "cpu" and gpus >= 1:
        return {"num_gpus": 1, "num_cpus": 1}, "cuda", gpus
    slots = cpus // spec.cpus
    if slots < 1:
        raise ClusterError(f"the Ray cluster has {cpus} CPUs; a worker asks for {spec.cpus}")
    return {"num_gpus": 0, "num_cpus": spec.cpus}, "cpu", slots


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class WorkerPool:
    """The workers of one `spec` on the connected cluster, held by the caller across runs.

    Workers are started by `run_units` as its units need them (at most `size`: default one per
    GPU of the cluster, or one per `spec.cpus` CPUs) and stay loaded until `close()` (or the end
    of a `with` block), so several runs pay for loading the model once. Workers that die are
    dropped; later runs start new ones.
    """

    def __init__(self, spec: WorkerSpec, *, size: int | None = None) -> None:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError("workers", size, "an integer >= 1, or None for one per GPU/CPU slot")
        self.spec = spec
        self.size = size
        self.idle: list[Any] = []  # loaded actors without work
        self.starting: dict[Any, Any] = {}  # info ref -> actor still loading the model
        self.names: dict[Any, str] = {}  # actor id -> host:pid
        self._class: Any = None
        self.device = ""
        self.slots = 0

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _setup(self) -> None:
        if self._class is not None:
            return
        ray = require_ray()
        if not ray.is_initialized():
            raise ClusterError("not connected to a Ray cluster", hint="run inside `with Cluster(...)`")
        options, self.device, self.slots = _worker_options(self.spec, ray.cluster_resources())
        self._class = ray.remote(Worker).options(max_restarts=0, max_task_retries=0, **options)

    @property
    def capacity(self) -> int:
        self._setup()
        return self.size or self.slots

    @property
    def alive(self) -> int:
        return len(self.idle) + len(self.starting)

    def start(self, count: int | None = None) -> None:
        """Start workers (without waiting for them) until `count` are loaded or loading
        (default: `capacity`), e.g. to load the model while other work goes on."""
        self._setup()
        for _ in range(max(0, (self.capacity if count is None else count) - self.alive)):
            actor = self._class.remote(self.spec, self.device)
            self.starting[actor.info.remote()] = actor

    def name(self, actor: Any) -> str:
        return self.names.get(actor._actor_id, "a worker")

    def kill(self, actor: Any) -> None:
        import ray

        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # already gone
            pass
        self.names.pop(actor._actor_id, None)

    def close(self) -> None:
        """Stop every worker of the pool."""
        for actor in [*self.idle, *self.starting.values()]:
            self.kill(actor)
        self.idle.clear()
        self.starting.clear()


def run_units(
    units: Sequence[Unit],
    pool: WorkerPool,
    *,
    settle: Callable[[Any, UnitResult], UnitResult] | None = None,
    before: Sequence[Event] = (),
    on_event: Callable[[Event, ClusterProgress], None] | None = None,
    max_attempts: int = 3,
    stop_grace: float = 30.0,
    poll: float = 0.25,
) -> RunReport:
    """Run `units` on the workers of `pool` (on the connected cluster, see `Cluster`) and return
    how each job ended.

    Up to `pool.capacity` workers, never more than there are units; the largest units first. A
    unit whose worker dies is run again by another worker (a new one if none is idle), at most
    `max_attempts` times in all; then its unfinished jobs fail. A job's error fails that job
    only. `settle(unit, result)`, on the driver, turns a unit's result into the final one (e.g.
    encodes its finished videos); `before` are events of jobs settled without work (reported
    first). Raises ClusterError when workers cannot start, RemoteError when a worker cannot load
    the model, RunInterrupted on Ctrl-C (after asking the units to stop, see the module docstring).
    """
    ray = require_ray()
    from ray.exceptions import RayActorError, RayError, RayTaskError

    if max_attempts < 1:
        raise ConfigError("max_attempts", max_attempts, "an integer >= 1")
    units = list(units)
    numbers = [u.number for u in units]
    if len(set(numbers)) != len(numbers):
        raise ValueError("unit numbers must be distinct")
    frames: dict[int, tuple[int, int]] = {}
    for unit in units:
        frames.update(unit.frames())
    progress = ClusterProgress(frames)
    started = time.monotonic()

    target = min(len(units), pool.capacity) if units else 0
    # restarted if its process dies (a node's memory monitor may pick it): events in it are lost,
    # the results are not (they come back with each unit)
    mailbox = (ray.remote(_Mailbox).options(num_cpus=0, max_restarts=-1, max_task_retries=-1).remote()
               if units else None)
    pending = collections.deque(sorted(units, key=lambda u: -u.cost))
    attempts = {u.number: 0 for u in units}
    running: dict[Any, tuple[Unit, Any, int]] = {}  # run ref -> (unit, actor, attempt)
    used: set[str] = set()
    lost = 0
    stop_asked = False
    max_lost = max_attempts * target + target  # workers that die while loading count too

    def notify(event: Event) -> None:
        if progress.apply(event) and on_event is not None:
            on_event(event, progress)

    def drain() -> None:
        if mailbox is None:
            return
        try:
            events = ray.get(mailbox.take.remote(), timeout=60)
        except RayError:  # the mailbox is being restarted: its events are lost, not the work
            return
        for event in events:
            notify(event)

    def fail_unit(unit: Unit, message: str, detail: str | None = None) -> None:
        for job in unit.job_ids:
            notify(JobFailed(job, message, 1, detail))

    def collect(ref: Any) -> None:
        """A finished `run` call: take its result, or retry/fail its unit."""
        nonlocal lost
        unit, actor, attempt = running.pop(ref)
        name = pool.name(actor)
        try:
            result = ray.get(ref)
        except RayTaskError as exc:  # an exception in the unit's code: a bug, not a lost worker
            cause = getattr(exc, "cause", None) or exc
            fail_unit(unit, f"internal error on {name}: {type(cause).__name__}: {_short(cause)}",
                      _ANSI.sub("", str(exc)))
            pool.idle.append(actor)
            return
        except (RayActorError, RayError) as exc:  # the worker died (process killed, node lost ...)
            pool.kill(actor)
            lost += 1
            retry = attempts[unit.number] < max_attempts
            notify(WorkerLost(unit.number, attempt, name, _short(exc), retry))
            if retry and not stop_asked:
                again = getattr(unit, "again", None)  # how the unit continues after a crash, if it says
                pending.appendleft(again() if again is not None else unit)
                return
            unit.abandon()
            if not stop_asked:
                for job in unit.job_ids:
                    if job not in progress.finished:
                        notify(JobFailed(job, f"its worker died {attempts[unit.number]} times; last: {_short(exc)}"))
            return
        pool.idle.append(actor)
        if settle is not None:
            result = settle(unit, result)
        for job, output in result.finished.items():
            notify(JobFinished(job, output))
        for job, (message, code) in result.failed.items():
            notify(JobFailed(job, message, code))

    def welcome(ref: Any) -> None:
        """A worker finished loading the model (or failed to)."""
        nonlocal lost
        actor = pool.starting.pop(ref)
        try:
            info = ray.get(ref)
        except RayError as exc:  # died while loading: out of memory, node lost ...
            pool.kill(actor)
            lost += 1
            if lost > max_lost:
                raise ClusterError(f"workers keep dying while they load the model; last: {_short(exc)}") from None
            return
        if info["error"] is not None:
            pool.kill(actor)
            message, code, hint = info["error"]
            raise RemoteError(f"worker {info['worker']} cannot load the model: {message}", exit_code=code, hint=hint)
        pool.names[actor._actor_id] = info["worker"]
        pool.idle.append(actor)
        notify(WorkerReady(info["worker"], info["device"]))

    def stop(grace: float) -> None:
        """Ask running units to stop at their next safe point; wait up to `grace` seconds."""
        nonlocal stop_asked
        stop_asked = True
        mailbox.stop.remote()
        pending.clear()
        deadline = time.monotonic() + grace
        try:
            while running and time.monotonic() < deadline:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=poll)
                drain()
                for ref in ready:
                    collect(ref)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once
            pass

    # Ray prints a line on the driver's stdout for each worker that dies; the driver reports lost
    # workers itself (WorkerLost), so those lines are held back for the run (a private switch of
    # Ray's, used by its own debugger: if it goes away, the lines simply show again)
    ray_worker = getattr(getattr(ray, "_private", None), "worker", None)
    logs_were = getattr(ray_worker, "_worker_logs_enabled", None)
    if logs_were is not None:
        ray_worker._worker_logs_enabled = False
    interrupted = False
    try:
        for event in before:
            notify(event)
        for actor in pool.idle if units else ():  # loaded by an earlier run
            notify(WorkerReady(pool.name(actor), pool.device))
        while pending or running:
            while pool.idle and pending:
                unit = pending.popleft()
                attempts[unit.number] += 1
                actor = pool.idle.pop()
                used.add(pool.name(actor))
                running[actor.run.remote(unit, attempts[unit.number], mailbox)] = (unit, actor, attempts[unit.number])
            wanted = min(target, len(pending) + len(running))
            if pool.alive + len(running) < wanted:
                pool.start(wanted - len(running))
            refs = list(running) + list(pool.starting)
            ready, _ = ray.wait(refs, num_returns=1, timeout=poll)
            if ready:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            drain()
            for ref in ready:
                if ref in pool.starting:
                    welcome(ref)
                else:
                    collect(ref)
        drain()
    except KeyboardInterrupt:
        interrupted = True
        stop(stop_grace)
    finally:
        for unit, actor, _ in running.values():  # still working after the grace time (or an error)
            pool.kill(actor)
        for unit, actor, _ in running.values():
            try:
                unit.abandon()
            except Exception:  # tidying must not hide why the run ended
                pass
        running.clear()
        try:
            drain()
        except Exception:  # the cluster may be going down with us
            pass
        if mailbox is not None:
            try:
                ray.kill(mailbox)
            except Exception:
                pass
        if logs_were is not None:
            ray_worker._worker_logs_enabled = logs_were

    reports = []
    for job in sorted({*frames, *progress.finished, *progress.failed}):
        if job in progress.finished:
            reports.append(JobReport(job, "finished", output=progress.finished[job]))
        elif job in progress.failed:
            failure = progress.failed[job]
            reports.append(JobReport(job, "failed", message=failure.message, exit_code=failure.exit_code,
                                     detail=failure.detail))
        else:
            reports.append(JobReport(job, "unfinished"))
    report = RunReport(tuple(reports), workers=len(used), retries=progress.retries, frames_made=progress.made,
                       elapsed=time.monotonic() - started, interrupted=interrupted)
    if interrupted:
        raise RunInterrupted(report)
    return report
