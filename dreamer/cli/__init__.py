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
    """A DreamerError on its way out: click prints 'Error: ...' and exits with its code."""

    def __init__(self, error: DreamerError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code


class DreamerGroup(click.Group):
    """Maps domain errors to click's messages and exit codes (1 runtime, 2 usage)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DreamerError as exc:
            raise CommandError(exc) from None
        except BrokenPipeError:
            # the reader went away (`dreamer classes | head -1`): stop quietly
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (nothing more may reach the pipe)
            sys.exit(1)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise click.ClickException(f"cannot write: no space left on device ({exc.filename or 'output'})") from None
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            sys.exit(130)
        except Exception as exc:
            torch = sys.modules.get("torch")
            if torch is not None and isinstance(exc, torch.OutOfMemoryError):
                raise click.ClickException(
                    "out of device memory; try a smaller --size, --tile 512, --precision bf16 or --device cpu"
                ) from None
            raise


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


_register()
