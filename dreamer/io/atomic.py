"""Atomic file writes: the one place where dreamer puts a file in place.

Every file dreamer writes (images, frames, videos, manifests, caches, reports) is written to a
temporary file in the destination's own folder (the same file system), flushed and fsynced,
given the permissions a new file would get, and renamed over the destination. An interruption
at any moment leaves either the old file or the new one, never half of one, and never deletes
anything but its own temporary file.

Temporary names are short and fixed in shape (``.dreamer-tmp-<12 hex><suffix>``), so a
destination name near the file system's limit does not make the temporary name too long;
`check_name` finds a destination name that is too long before any work is done.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import OutputError

__all__ = [
    "TEMP_PREFIX",
    "atomic_path",
    "atomic_write",
    "write_bytes",
    "write_text",
    "temp_path",
    "is_temp_name",
    "check_name",
    "file_mode",
    "os_error_message",
]

#: Every temporary file dreamer makes starts with this (and only dreamer's do).
TEMP_PREFIX = ".dreamer-tmp-"
# a suffix longer than this is left off the temporary name (it only helps people who look)
_MAX_TEMP_SUFFIX = 12
_PathLike = str | os.PathLike[str]


def temp_path(path: _PathLike) -> Path:
    """A fresh temporary name beside `path`: ``.dreamer-tmp-<12 hex><suffix>``."""
    path = Path(path)
    suffix = path.suffix if len(path.suffix) <= _MAX_TEMP_SUFFIX else ""
    return path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}{suffix}")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of dreamer's temporary files (left behind by a crash)."""
    return name.startswith(TEMP_PREFIX)


def file_mode() -> int:
    """The permissions a newly created file gets under the current umask (mkstemp's are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no such folder yet, or no pathconf (Windows)
        return 255


def check_name(path: _PathLike, *, what: str = "output") -> Path:
    """Refuse (OutputError, exit 1) a name too long for the file system of its folder.

    Checks the last component against the folder's NAME_MAX (255 bytes on most file systems),
    counting bytes as the file system stores them, so it can be called before anything is written.
    """
    path = Path(path)
    name = os.fsencode(path.name)
    folder = path.parent if str(path.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    limit = _name_max(folder)
    if len(name) > limit:
        shown = path.name if len(path.name) <= 60 else path.name[:40] + "..." + path.name[-12:]
        raise OutputError(
            f"cannot write the {what} {shown!r}: its name is {len(name)} bytes, "
            f"longer than this file system allows ({limit})",
            hint="choose a shorter name with -o",
        )
    return path


def os_error_message(path: _PathLike, exc: OSError) -> str:
    """One line saying why `path` could not be written, e.g. 'no space left on device'."""
    reasons = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.ENAMETOOLONG: "file name too long for the file system",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOENT: "the folder does not exist",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.EISDIR: "it is a folder",
    }
    reason = " ".join(str(exc.strerror).split()) if exc.strerror else reasons.get(exc.errno) or " ".join(str(exc).split())
    return f"cannot write {str(path)!r}: {reason}"


def _fsync_folder(folder: Path) -> None:
    # makes the rename itself durable; not every system can open a folder (Windows)
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: _PathLike, *, sync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` for a writer that wants a file name (PyAV, Pillow).

    When the block ends without an exception, the temporary file is fsynced, given ordinary
    permissions and renamed to `path` (replacing it). On any exception it is removed and
    `path` is untouched; an OSError becomes an `OutputError` naming `path` and the reason.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        if sync:
            with open(tmp, "rb+") as file:
                os.fsync(file.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        _unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, (BrokenPipeError,)):
            raise OutputError(os_error_message(path, exc)) from exc
        raise
    if sync:
        _fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_write(path: _PathLike, mode: str = "wb", *, encoding: str | None = None,
                 sync: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing (`mode` "wb" or "w"); see `atomic_path`."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path, sync=sync) as tmp:
        with open(tmp, mode.replace("w", "x"), encoding=encoding) as file:
            yield file
            file.flush()


def write_bytes(path: _PathLike, data: bytes, *, sync: bool = True) -> Path:
    """Write `data` to `path` atomically; return `path` as a Path."""
    with atomic_write(path, "wb", sync=sync) as file:
        file.write(data)
    return Path(path)


def write_text(path: _PathLike, text: str, *, sync: bool = True) -> Path:
    """Write UTF-8 `text` to `path` atomically; return `path` as a Path."""
    with atomic_write(path, "w", sync=sync) as file:
        file.write(text)
    return Path(path)
