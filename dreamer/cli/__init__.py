"""The `dreamer` command line. click lives here and nowhere else.

Each command module only imports click and light modules at import time; torch and the
engine are imported inside command bodies so that `dreamer --help` is instant.
"""

from __future__ import annotations

import errno
import os
import sys

import click

from .. import __version__
from ..errors import DreamerError


class CommandError(click.ClickException):
    """A DreamerError on its way out: click prints 'Error: ...' and exits with its code.

    The message is one line (control characters in it, say a newline in a file name, are
    escaped), plus a 'Hint:' line when there is one; a ConfigError names the flag the user
    typed (`--octave-scale`), not the config field (`octave_scale`)."""

    def __init__(self, error: DreamerError) -> None:
        from .common import shown

        message = _flag_named(error)
        text = shown(message)
        if error.hint:
            text += "\nHint: " + shown(error.hint)
        super().__init__(text)
        self.exit_code = error.exit_code


def _flag_named(error: DreamerError) -> str:
    from ..errors import ConfigError
    from .common import FIELD_FLAGS

    message = error.message
    if isinstance(error, ConfigError):
        flag = FIELD_FLAGS.get(error.field)
        prefix = f"invalid {error.field}: "
        if flag and message.startswith(prefix):
            message = f"invalid {flag}: " + message[len(prefix):]
    return message


def _runtime(message: str) -> click.ClickException:
    exc = click.ClickException(message)
    exc.exit_code = 1
    return exc


_OUT_OF_MEMORY = ("can't allocate memory", "cannot allocate memory", "not enough memory", "out of memory")


class _QuietStream:
    """stderr that never fails the command: progress and warnings are lost, not the picture,
    when stderr is closed, full or a broken pipe (`2>&-`, `2>/dev/full`, `2>&1 | head`)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _guard_standard_streams() -> None:
    """A closed fd 0/1/2 is reopened on /dev/null (else the next file opened takes its number, and
    anything written to 'stderr' would land in an output); stderr is made failure-proof."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                opened = os.open(os.devnull, os.O_RDWR)
            except OSError:
                continue
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
    if sys.stderr is None:
        try:
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        except OSError:
            return
    if not isinstance(sys.stderr, _QuietStream):
        sys.stderr = _QuietStream(sys.stderr)


class DreamerGroup(click.Group):
    """Maps domain errors to click's messages and exit codes (1 runtime, 2 usage), and the
    environment's failures (no memory, no space, names too long ...) to one line each."""

    def main(self, *args, **kwargs):
        saved = sys.stderr
        _guard_standard_streams()
        try:
            return super().main(*args, **kwargs)
        finally:
            sys.stderr = saved

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DreamerError as exc:
            raise CommandError(exc) from None
        except BrokenPipeError:
            # the reader went away (`dreamer classes | head -1`): stop quietly
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (nothing more may reach the pipe)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            sys.exit(130)
        except MemoryError:
            raise _runtime("out of memory; try a smaller --size, --batch or --tile, or fewer --layer terms") from None
        except RecursionError:
            raise _runtime("an input is nested too deeply to read (a preset or jobs file?)") from None
        except OSError as exc:
            raise _runtime(_os_message(exc)) from None
        except Exception as exc:
            torch = sys.modules.get("torch")
            if torch is not None and isinstance(exc, torch.OutOfMemoryError):
                raise _runtime(
                    "out of device memory; try a smaller --size, --tile 512, --precision bf16 or --device cpu"
                ) from None
            text = str(exc).lower()
            if isinstance(exc, RuntimeError) and any(m in text for m in _OUT_OF_MEMORY):
                raise _runtime(
                    "out of memory; try a smaller --size, --batch or --tile, or a smaller --blur"
                ) from None
            if isinstance(exc, RuntimeError) and "without overflow" in text:
                raise _runtime(
                    "a setting is too large for the arithmetic (a value overflowed); use smaller --lr, --step-size or --tv"
                ) from None
            raise


def _os_message(exc: OSError) -> str:
    """One line for a failure of the file system (or a device) that reached the CLI."""
    from .common import shown

    name = exc.filename
    where = f" {shown(name)[:80]}" if name else ""
    if exc.errno == errno.ENOSPC:
        return f"cannot write{where or ' (an output, or standard output)'}: no space left on device"
    if exc.errno == errno.ENAMETOOLONG:
        return f"cannot use{where}: the file name is too long for the file system"
    if exc.errno == errno.EROFS:
        return f"cannot write{where}: read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot access{where}: permission denied"
    return f"{exc.strerror or type(exc).__name__}{':' + where if where else ''}"


@click.group(cls=DreamerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dreamer")
def main() -> None:
    """DeepDream and feature visualisation with a pretrained GoogLeNet.

    \b
    Start with:
      dreamer run photo.jpg --layer mixed4c
      dreamer layers
    """


def _register() -> None:
    from . import run  # noqa: F401  (each module adds its commands to `main`)
    from . import bench  # noqa: F401
    from . import visualize  # noqa: F401
    from . import presets  # noqa: F401
    from . import zoom  # noqa: F401
    from . import video  # noqa: F401
    from . import models  # noqa: F401
    from . import preview  # noqa: F401  (adds `presets preview`)


_register()
