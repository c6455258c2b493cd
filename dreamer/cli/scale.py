"""`--ray [ADDRESS]`: the jobs of `dreamer zoom` run on a Ray cluster (`dreamer.scale`).

The command builds and opens its session as always (every check, lock and frame store on this
machine, the driver); only the making of frames moves to the cluster's workers. This module
is the option, the aggregated progress line and the report.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .common import option, warn

__all__ = ["ray_option", "zoom_on_ray"]


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


def zoom_on_ray(session, address: str, *, weights: str | None, device: str | None, batch: int | None,
                quiet: bool, dream=None, report_unfinished=None) -> None:
    """Make the open `session`'s videos on the Ray cluster at `address` ("local" starts one).

    Prints each output as it is finished, each failed video as it fails (the others go on), an
    aggregated progress line; exits 1 if any video failed, 130 after Ctrl-C (frame stores kept,
    partial videos written, `report_unfinished(session, hint=...)` says where)."""
    from ..models import get_spec
    from ..scale import Cluster, RunInterrupted, WorkerPool, WorkerSpec, check_sizes, run_session
    from ..scale.runner import JobFailed, JobFinished, WorkerLost
    from .progress import ProgressLine

    spec = WorkerSpec(session.model, _weights(weights), _worker_device(device))
    if spec.weights.startswith("random"):
        warn(f"using untrained weights ({spec.weights}) on every worker: the result shows a random network, "
             "not what a pretrained one sees", quiet=quiet)
    warnings, skip = check_sizes(session, get_spec(session.model).min_size)
    for message in warnings:
        warn(message, quiet=quiet)
    count = len(session.videos)
    label = f"zoom {count} video{'s' if count != 1 else ''} on ray"
    bar = ProgressLine(label, quiet=quiet)
    failed: list[JobFailed] = []

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
        total = len(session.videos)
        click.echo(f"{len(failed)} of {total} video{'s' if total != 1 else ''} failed; the others are finished.",
                   err=True)
        raise click.exceptions.Exit(1)
