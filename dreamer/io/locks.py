"""Output locks: one writer per output at a time.

While a run owns an output (a video, a frame store), a small lock file sits beside it:
``.<name>.dreamer-lock``, holding JSON with the owner's pid, host and start time. It is
created atomically (a complete temporary file hard-linked into place, or O_EXCL where links
are not supported), so a second run finds either no lock or a whole one.

A second writer gets `LockedError` (exit 1) naming the lock file and its owner. A lock whose
owner is gone (same host, pid no longer running: a killed or crashed run) is stale and is
taken over. A lock from another host is never taken over automatically (its pid means
nothing here); the message says how to remove it by hand.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DreamerError, OutputError
from .atomic import os_error_message, temp_path

__all__ = ["LockedError", "OutputLock", "lock_path", "read_lock", "is_lock_name"]

_SUFFIX = ".dreamer-lock"


class LockedError(DreamerError):
    """An output is being written by another run (exit code 1)."""

    def __init__(self, target: Path, lock: Path, owner: dict[str, Any] | None) -> None:
        if owner and isinstance(owner.get("pid"), int):
            since = owner.get("started")
            when = f" since {time.strftime('%H:%M:%S', time.localtime(since))}" if isinstance(since, (int, float)) else ""
            who = f"dreamer run (pid {owner['pid']} on {owner.get('host', '?')}{when})"
        else:
            who = "process (its lock file cannot be read)"
        super().__init__(
            f"{str(target)!r} is being written by another {who}; lock file: {lock}",
            hint="wait for that run to finish; if no such run exists any more, delete the lock file",
        )
        self.target = target
        self.lock = lock
        self.owner = owner


def lock_path(target: Path | str) -> Path:
    """The lock file of `target`: ``.<name>.dreamer-lock`` in the same folder."""
    target = Path(target)
    return target.with_name(f".{target.name}{_SUFFIX}")


def is_lock_name(name: str) -> bool:
    """Whether a file name is one of dreamer's lock files."""
    return name.startswith(".") and name.endswith(_SUFFIX)


def read_lock(path: Path) -> dict[str, Any] | None:
    """The owner recorded in a lock file, or None when it cannot be read as one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def _stale(owner: dict[str, Any] | None) -> bool:
    """Whether a lock's owner is certainly gone: this host, and its pid is not running."""
    if not owner or not isinstance(owner.get("pid"), int) or isinstance(owner.get("pid"), bool):
        return False
    if owner.get("host") != socket.gethostname():
        return False
    return not _alive(owner["pid"])


@dataclass(eq=False)
class OutputLock:
    """A lock on `target` (a file or folder that may not exist yet). Use as a context manager,
    or `acquire()` / `release()`. Not re-entrant: a second acquire of a held target fails."""

    target: Path

    def __post_init__(self) -> None:
        self.target = Path(self.target)
        self.path = lock_path(self.target)
        self._held = False
        self._record = ""

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self) -> OutputLock:
        """Take the lock; raise `LockedError` if another live run holds it."""
        if self._held:
            return self
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                  "target": self.target.name}
        self._record = json.dumps(record, sort_keys=True)
        for _ in range(3):
            if self._create():
                self._held = True
                return self
            owner = read_lock(self.path)
            if owner is None and not self.path.exists():
                continue  # released between our attempt and the read: try again
            if not _stale(owner) or not self._take_over_stale(owner):
                raise LockedError(self.target, self.path, owner)
        raise LockedError(self.target, self.path, read_lock(self.path))

    def _create(self) -> bool:
        """Create the lock file with its whole content in one step; False if it exists."""
        tmp = temp_path(self.path)
        try:
            with open(tmp, "x", encoding="utf-8") as file:
                file.write(self._record)
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
            # no hard links here (some network and FUSE file systems): O_EXCL instead
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(self._record)
            return True
        except OSError as exc:
            raise OutputError(os_error_message(self.path, exc),
                              hint="dreamer needs to create a small lock file beside the output") from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _take_over_stale(self, owner: dict[str, Any]) -> bool:
        """Remove a stale lock, making sure it is still the same stale one (another new run
        may have taken it over a moment ago). True when it was removed."""
        aside = temp_path(self.path)
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # someone else removed it: try again
        except OSError:
            return False
        if read_lock(aside) == owner:
            with contextlib.suppress(OSError):
                aside.unlink()
            return True
        # a live run's fresh lock was moved: put it back and report it as held
        with contextlib.suppress(OSError):
            os.link(aside, self.path)
        with contextlib.suppress(OSError):
            aside.unlink()
        return False

    def release(self) -> None:
        """Remove the lock file if it is still ours."""
        if not self._held:
            return
        self._held = False
        try:
            if self.path.read_text(encoding="utf-8") != self._record:
                return  # not ours any more (removed by hand and taken by another run)
            self.path.unlink()
        except OSError:
            pass

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
