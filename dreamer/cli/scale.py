"""`--ray [ADDRESS]`: the jobs of `dreamer zoom` and the inputs of `dreamer video` run on a Ray
cluster (`dreamer.scale`).

`dreamer zoom` builds and opens its session as always (every check, lock and frame store on
this machine, the driver); only the making of frames moves to the cluster's workers.
`dreamer video` checks its videos and holds their locks here; each worker dreams whole videos
with the video library's session. This module is the option, the aggregated progress line and
the report.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .common import option, warn

__all__ = ["ray_option", "zoom_on_ray", "video_on_ray"]


def _check_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Parse time: a bad address, or Ray missing, is reported before anything else happens."""
    if value is None:
        return None
    from ..scale.cluster import parse_address, require_ray

    address = parse_address(value)
    require_ray()
    return address


ray_option = option(
    "--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
    callback=_check_address,
    help="Make the frames on a Ray cluster: --ray alone starts one on this machine; --ray auto or "
         "--ray HOST:PORT joins one started with `ray start` (outputs must be on storage every node sees). "
         "Needs pip install 'dreamer[ray]'.",
)


def _worker_device(device: str | None) -> str:
    if device in (None, "auto"):
        return "auto"
    if device in ("cpu", "cuda"):
        return device
    raise UsageError(f"--device {device} does not apply with --ray: each worker uses the GPU Ray gives it",
                     hint="leave --device out (a GPU per worker when the cluster has GPUs), or --device cpu")


def _weights(weights: str | None) -> str:
    """The weights as every worker must read them: a file path made absolute."""
    from ..models.weights import parse_weights

    choice = parse_weights(weights or "pretrained")
    if choice.kind == "path":
        return str(Path(choice.path).absolute())
    return str(choice)


def _display(label: str, quiet: bool, failed: list):
    """The aggregated progress line of a run on Ray and what it prints as events come: each
    output as it is finished, each failure as it happens (kept in `failed`), lost workers."""
    from ..scale.runner import JobFailed, JobFinished, WorkerLost
    from .progress import ProgressLine

    bar = ProgressLine(label, quiet=quiet)

    def show(event, progress) -> None:
        if isinstance(event, JobFinished):
            bar.close()
            if not quiet:
                click.echo(event.output)
            return  # the line is redrawn with the next frame
        if isinstance(event, JobFailed):
            bar.close()
            failed.append(event)
            click.echo(f"Error: {event.message}", err=True)
            if event.detail:
                click.echo(event.detail, err=True)
        elif isinstance(event, WorkerLost):
            bar.close()
            then = ("its videos continue on another worker from their stored frames" if event.retried
                    else "no more tries for its videos")
            warn(f"worker {event.worker} was lost ({event.reason}); {then}", quiet=quiet)
        rate = progress.rate
        workers = len(progress.workers)
        detail = f"{len(progress.finished)}/{progress.jobs_total} videos done"
        if progress.failed:
            detail += f", {len(progress.failed)} failed"
        if rate is not None:
            detail += f", {rate:.1f} frames/s"
        detail += f", {workers} worker{'s' if workers != 1 else ''}"
        bar.update(progress.frames_done, progress.frames_total, detail)

    return bar, show


def _spec(model: str, weights: str | None, device: str | None, quiet: bool):
    from ..scale import WorkerSpec

    spec = WorkerSpec(model, _weights(weights), _worker_device(device))
    if spec.weights.startswith("random"):
        warn(f"using untrained weights ({spec.weights}) on every worker: the result shows a random network, "
             "not what a pretrained one sees", quiet=quiet)
    return spec


def _plural(count: int) -> str:
    return f"{count} video{'s' if count != 1 else ''}"


def zoom_on_ray(session, address: str, *, weights: str | None, device: str | None, batch: int | None,
                quiet: bool, dream=None, report_unfinished=None) -> None:
    """Make the open `session`'s videos on the Ray cluster at `address` ("local" starts one).

    Prints each output as it is finished, each failed video as it fails (the others go on), an
    aggregated progress line; exits 1 if any video failed, 130 after Ctrl-C (frame stores kept,
    partial videos written, `report_unfinished(session, hint=...)` says where)."""
    from ..models import get_spec
    from ..scale import Cluster, RunInterrupted, WorkerPool, check_sizes, run_session

    spec = _spec(session.model, weights, device, quiet)
    warnings, skip = check_sizes(session, get_spec(session.model).min_size)
    for message in warnings:
        warn(message, quiet=quiet)
    count = len(session.videos)
    failed: list = []
    bar, show = _display(f"zoom {_plural(count)} on ray", quiet, failed)

    try:
        with Cluster(address), WorkerPool(spec) as pool:
            run_session(session, pool, batch_size=batch, dream=dream, on_event=show, skip=skip)
    except RunInterrupted:
        bar.close()
        if report_unfinished is not None:
            report_unfinished(session)
        click.echo("Interrupted. Run the same command with --resume to continue.", err=True)
        raise click.exceptions.Exit(130) from None
    except BaseException:  # the cluster could not be used: say where the frames made so far are
        bar.close()
        if report_unfinished is not None:
            report_unfinished(session, hint="--resume continues")
        raise
    finally:
        bar.close()
    if failed:
        if report_unfinished is not None:
            report_unfinished(session, hint="--resume continues")
        click.echo(f"{len(failed)} of {_plural(count)} failed; the others are finished.", err=True)
        raise click.exceptions.Exit(1)


def _kept(jobs, numbers) -> None:
    """Where the frames of the unfinished videos `numbers` are (and their partial videos)."""
    from ..io.video import frame_store_path, output_kind, partial_path
    from ..scale.video import stored_frames

    for number in numbers:
        job = jobs[number]
        count = stored_frames(job.output)
        if not count:
            continue
        store = frame_store_path(job.output)
        partial = partial_path(job.output)
        if output_kind(job.output) == "frames" and partial.is_dir():
            store = partial
        line = f"{job.input}: {count} frames are in {store}"
        if output_kind(job.output) != "frames" and partial.is_file():
            line += f"\n  partial video: {partial}"
        click.echo(line, err=True)


def video_on_ray(jobs, address: str, *, config, weights: str | None, device: str | None, batch: int | None,
                 quiet: bool, **options) -> None:
    """Dream `jobs` (`VideoJob`s) on the Ray cluster at `address`, one video per worker at a
    time (`dreamer.scale.video`); `options` are `run_videos`' (start, end, size, fps, force,
    resume, ...). Prints as `zoom_on_ray`; exits 1 if any video failed, 130 after Ctrl-C."""
    from ..scale import Cluster, RunInterrupted, WorkerPool, run_videos

    if batch is not None:
        raise UsageError("--batch does not apply with --ray: each worker dreams one video at a time",
                         hint="leave --batch out (see docs/scale.md)")
    spec = _spec(config.dream.model, weights, device, quiet)
    failed: list = []
    bar, show = _display(f"video {_plural(len(jobs))} on ray", quiet, failed)
    try:
        with Cluster(address), WorkerPool(spec) as pool:
            run_videos(jobs, pool, config, on_event=show, warn=lambda message: warn(message, quiet=quiet), **options)
    except RunInterrupted as stop:
        bar.close()
        _kept(jobs, [j.job for j in stop.report.jobs if j.status == "unfinished"])
        click.echo("Interrupted. Run the same command with --resume to continue.", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        bar.close()
    if failed:
        _kept(jobs, [f.job for f in failed])
        click.echo(f"{len(failed)} of {_plural(len(jobs))} failed; the others are finished.", err=True)
        raise click.exceptions.Exit(1)
