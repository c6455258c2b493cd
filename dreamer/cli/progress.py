"""A progress line on stderr: shown only for work longer than a second, with an ETA."""

from __future__ import annotations

import sys
import time

import click

__all__ = ["ProgressLine", "SteadyRate"]


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class SteadyRate:
    """Time left from the steady rate of work: measured from the first report on, so the first
    unit's warm-up (model preparation, first allocations, kernel selection), which can take
    longer than many later units together, does not inflate the estimate."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None  # (time, units done) at the first report

    def update(self, done: int, now: float | None = None) -> None:
        if self.first is None and done > 0:
            self.first = (time.monotonic() if now is None else now, done)

    def eta(self, done: int, total: int, now: float | None = None) -> float | None:
        """Seconds left for `total - done` units, or None while no steady unit has been timed."""
        if self.first is None or done <= self.first[1]:
            return None
        now = time.monotonic() if now is None else now
        t0, d0 = self.first
        return (now - t0) / (done - d0) * (total - done)


class ProgressLine:
    """Call `update(done, total, detail)` as work proceeds; `close()` at the end.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) at most every 10 s.
    Nothing is shown before `delay` seconds have passed, nor at all when `quiet`.

    The ETA comes from the steady rate (`SteadyRate`: the first unit's warm-up is not counted);
    until a second unit is done it shows as "ETA ...".
    """

    def __init__(self, label: str, *, quiet: bool = False, delay: float = 1.0, width: int = 24) -> None:
        self.label = label
        self.quiet = quiet
        self.delay = delay
        self.width = width
        self.start = time.monotonic()
        stream = sys.stderr
        self.tty = bool(stream is not None and stream.isatty())
        self.last_draw = 0.0
        self.drawn = False
        self.rate = SteadyRate()

    def update(self, done: int, total: int, detail: str = "") -> None:
        now = time.monotonic()
        self.rate.update(done, now)
        if self.quiet:
            return
        elapsed = now - self.start
        if elapsed < self.delay and done < total:
            return
        if not self.tty and now - self.last_draw < 10 and done < total:
            return
        if not self.drawn and done >= total and elapsed < self.delay:
            return
        self.last_draw = now
        frac = done / total if total else 1.0
        filled = int(self.width * frac)
        bar = "#" * filled + "." * (self.width - filled)
        if done >= total:
            tail = f"took {_fmt_seconds(elapsed)}"
        else:
            eta = self.rate.eta(done, total, now)
            tail = "ETA ..." if eta is None else f"ETA {_fmt_seconds(eta)}"
        text = f"{self.label} [{bar}] {100 * frac:3.0f}% {detail} {tail}".rstrip()
        if self.tty:
            click.echo("\r\x1b[2K" + text, nl=False, err=True)
        else:
            click.echo(text, err=True)
        self.drawn = True

    def close(self) -> None:
        if self.drawn and self.tty and not self.quiet:
            click.echo("", err=True)
        self.drawn = False
