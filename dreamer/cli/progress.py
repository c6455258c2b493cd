"""A progress line on stderr: shown only for work longer than a second, with an ETA."""

from __future__ import annotations

import sys
import time

import click

__all__ = ["ProgressLine"]


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class ProgressLine:
    """Call `update(done, total, detail)` as work proceeds; `close()` at the end.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) at most every 10 s.
    Nothing is shown before `delay` seconds have passed, nor at all when `quiet`.
    """

    def __init__(self, label: str, *, quiet: bool = False, delay: float = 1.0, width: int = 24) -> None:
        self.label = label
        self.quiet = quiet
        self.delay = delay
        self.width = width
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_draw = 0.0
        self.drawn = False

    def update(self, done: int, total: int, detail: str = "") -> None:
        if self.quiet:
            return
        now = time.monotonic()
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
        eta = elapsed / done * (total - done) if done else 0.0
        tail = f"ETA {_fmt_seconds(eta)}" if done < total else f"took {_fmt_seconds(elapsed)}"
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
