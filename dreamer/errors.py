"""The errors dreamer raises for people (not for bugs).

Each error carries the process exit code the CLI should use and an optional
hint: a suggestion of what to do instead. No click in here: the CLI maps these
to click's messages and exit codes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "DreamerError",
    "UsageError",
    "ConfigError",
    "UnknownNameError",
    "ImageError",
    "OutputError",
    "OutputExistsError",
    "WeightsError",
    "DeviceError",
    "DeviceUnavailableError",
    "PresetError",
    "EncoderError",
    "MissingDependencyError",
    "closest",
]

#: Exit code for runtime failures (bad data, network, files, devices).
EXIT_RUNTIME = 1
#: Exit code for usage errors (bad names or values given on the command line), as click uses.
EXIT_USAGE = 2


class DreamerError(Exception):
    """Base of every error meant for a person. `exit_code` 1: a runtime failure."""

    exit_code: int = EXIT_RUNTIME

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nHint: {self.hint}"
        return self.message


class UsageError(DreamerError):
    """A value or name given by the user is not valid (exit code 2)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A configuration field has a value it cannot take: says which field, what value, what is allowed."""

    def __init__(self, field: str, value: object, allowed: str, *, hint: str | None = None) -> None:
        super().__init__(f"invalid {field}: {value!r} ({allowed})", hint=hint)
        self.field = field
        self.value = value
        self.allowed = allowed


class UnknownNameError(UsageError):
    """A name (layer, class, preset, model ...) that does not exist, with the closest known names."""

    def __init__(self, kind: str, name: str, known: Iterable[str], *, listing: str | None = None) -> None:
        known = list(known)
        matches = closest(name, known)
        message = f"unknown {kind} {name!r}"
        if matches:
            message += f"; did you mean {', '.join(repr(m) for m in matches)}?"
        super().__init__(message, hint=f"see `{listing}` for the full list" if listing else None)
        self.kind = kind
        self.name = name
        self.suggestions = matches


class ImageError(DreamerError):
    """An image that cannot be read (not an image, truncated, empty, too large)."""


class OutputError(DreamerError):
    """An output that cannot be written (unwritable directory, a file where a folder should be ...)."""


class OutputExistsError(UsageError):
    """The output exists (and --force was not given), or would overwrite the input."""


class WeightsError(DreamerError):
    """Model weights could not be obtained or loaded."""


class DeviceError(UsageError):
    """A device name that is not understood."""


class DeviceUnavailableError(DreamerError):
    """A device that was asked for but is not present on this machine."""


class PresetError(DreamerError):
    """A preset file that cannot be used (syntax, unknown key, wrong type or value)."""


class EncoderError(DreamerError):
    """A video/animation encoder library is missing or failed."""


class MissingDependencyError(DreamerError):
    """An optional library needed for what was asked is not installed (exit code 1); the hint
    says which extra to install."""


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The up to `n` known names closest to `name` (case-insensitive), best first."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]
