"""Connecting to Ray: start a local cluster, or join one that `ray start` made.

Ray is an optional extra (``pip install 'dreamer[ray]'``): nothing here imports it at module
level, and `require_ray` turns its absence into one clear error.
"""

from __future__ import annotations

import logging
import re
from types import ModuleType
from typing import Any

from ..errors import DreamerError, MissingDependencyError, UsageError

__all__ = ["RayUnavailableError", "ClusterError", "require_ray", "parse_address", "Cluster", "INSTALL_HINT"]

#: How to get Ray, in every message that needs it.
INSTALL_HINT = "pip install 'dreamer[ray]'"

_HOST_PORT = re.compile(r"(?:ray://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})")


class RayUnavailableError(MissingDependencyError):
    """Ray is not installed (exit code 1)."""


class ClusterError(DreamerError):
    """A Ray cluster that cannot be reached or used (exit code 1)."""


def require_ray() -> ModuleType:
    """The `ray` module, or RayUnavailableError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            f"--ray needs Ray, which is not installed: {INSTALL_HINT}",
            hint="or run without --ray: the same jobs then run in this process",
        ) from exc
    return ray


def parse_address(text: str | None) -> str:
    """``None``, ``""`` or ``local`` -> ``"local"`` (start a cluster here); ``auto`` (join the
    cluster `ray start` made on this machine or that ``RAY_ADDRESS`` names); ``HOST:PORT`` or
    ``ray://HOST:PORT`` (join that one). Anything else is a UsageError: with an optional value,
    ``--ray photo.jpg`` would otherwise silently take the first source as the address."""
    if text is None or text.strip() in ("", "local"):
        return "local"
    text = text.strip()
    if text == "auto":
        return text
    match = _HOST_PORT.fullmatch(text)
    if match and 0 < int(match.group(2)) < 65536:
        return text
    raise UsageError(
        f"--ray {text!r} is not a Ray address (auto, HOST:PORT or ray://HOST:PORT)",
        hint="to start a local cluster put --ray after the sources, or write --ray local",
    )


def _reachable(address: str, timeout: float = 10.0) -> None:
    """ClusterError unless something accepts connections at HOST:PORT (or ray://HOST:PORT)."""
    import socket

    text = address.removeprefix("ray://")
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}",
            hint="start one there with `ray start --head --port=PORT` (and `ray start --address=HEAD:PORT` on "
                 "the other machines), or use --ray without an address for a local cluster",
        ) from None


class Cluster:
    """A connection to a Ray cluster for the length of a `with` block.

    ``address="local"`` starts a cluster on this machine (and stops it at the end); ``auto`` or
    ``HOST:PORT`` joins a running one (and only disconnects at the end). A process that already
    called ``ray.init`` keeps its connection: the block uses it and leaves it open.
    `num_cpus`/`num_gpus` limit what a local cluster offers (default: the whole machine).
    """

    def __init__(self, address: str | None = "local", *, num_cpus: int | None = None,
                 num_gpus: int | None = None) -> None:
        self.address = parse_address(address)
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.owned = False
        self.started = False

    def __enter__(self) -> Cluster:
        ray = require_ray()
        if ray.is_initialized():
            return self
        options: dict[str, Any] = dict(
            log_to_driver=False,  # workers' own output stays in the cluster logs, not on the progress line
            logging_level=logging.ERROR,  # Ray's notices (token auth ...) would break the progress line
            configure_logging=True,
        )
        if self.address == "local":
            options.update(include_dashboard=False, num_cpus=self.num_cpus, num_gpus=self.num_gpus)
        elif self.num_cpus is not None or self.num_gpus is not None:
            raise UsageError("num_cpus/num_gpus only apply to a local cluster; a joined one offers what `ray start` gave it")
        if self.address not in ("local", "auto"):
            _reachable(self.address)  # Ray itself would retry for minutes
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
            where = "a new local cluster" if self.address == "local" else f"a Ray cluster at {self.address}"
            hint = None if self.address == "local" else (
                "start one with `ray start --head` (or `ray start --address=HEAD:6379` on the other machines), "
                "or use --ray without an address for a local cluster"
            )
            raise ClusterError(f"cannot connect to {where}: {exc}", hint=hint) from None
        self.owned = True
        self.started = self.address == "local"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.owned:
            import ray

            ray.shutdown()
            self.owned = False

    def resources(self) -> dict[str, float]:
        """What the whole cluster offers ({'CPU': 8.0, 'GPU': 2.0, ...})."""
        import ray

        return dict(ray.cluster_resources())

    @property
    def gpus(self) -> int:
        return int(self.resources().get("GPU", 0))

    @property
    def cpus(self) -> int:
        return int(self.resources().get("CPU", 0))
