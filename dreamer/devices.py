"""Choosing the device: auto, cpu, cuda, cuda:N, mps."""

from __future__ import annotations

import re

import torch

from .errors import ConfigError, DeviceError, DeviceUnavailableError

__all__ = ["resolve_device", "set_threads", "DEVICE_CHOICES"]

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch device for a user's choice; `auto` picks CUDA, then MPS, then the CPU."""
    if isinstance(name, torch.device):
        return name
    text = (name or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m:
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {name!r} was asked for, but CUDA is not available on this machine",
                hint="use --device cpu (or auto)",
            )
        index = int(m.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceUnavailableError(
                f"device {name!r} does not exist: this machine has {count} CUDA device(s), cuda:0-cuda:{count - 1}"
            )
        return torch.device("cuda", index)
    if text == "mps":
        if not _mps_available():
            raise DeviceUnavailableError("device 'mps' was asked for, but MPS is not available", hint="use --device cpu")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}: use {DEVICE_CHOICES}")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def set_threads(threads: int | None) -> int:
    """Let torch use `threads` CPU threads for its work; returns the number in use.

    None changes nothing: torch's default, which follows ``OMP_NUM_THREADS`` when it is set and
    is the number of cores otherwise. On a machine busy with other work, fewer threads than
    cores can be much faster (threads wait for each other when one is descheduled).
    """
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError("threads", threads, "an integer >= 1")
        torch.set_num_threads(threads)
    return torch.get_num_threads()
