"""What both loops share: progress reports, per-image random generators, the size check, the
start-noise policy and the total-variation penalty."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import ImageError

__all__ = [
    "Progress",
    "ProgressFn",
    "make_generators",
    "check_size",
    "check_batch",
    "noise_amplitude",
    "total_variation",
    "NOISE_AMPLITUDE",
]

#: Amplitude (± around mid-grey) of the noise a render (``param="fft"``) starts from. A render
#: reproduces its start exactly and nothing pulls pixel grain back out, so the ±0.1 noise of a
#: classic dream would stay in the picture as film grain; the literature starts from a nearly
#: uniform grey (a spectrum of a few hundredths), which this matches.
NOISE_AMPLITUDE = 0.01
#: Amplitude of the noise a classic (``param="pixel"``) dream from noise starts from: enough
#: texture for the first octave's gradient to grow patterns from.
PIXEL_NOISE_AMPLITUDE = 0.1


@dataclass(frozen=True)
class Progress:
    """One finished step. `objective` is the (B,) score before the step (a device tensor:
    reading it waits for the device, so only read it when needed). A render has one octave."""

    octave: int
    octaves: int
    step: int
    steps: int
    done: int
    total: int
    objective: torch.Tensor | None = None


ProgressFn = Callable[[Progress], None]


def make_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image, so each image's random draws depend only on its own seed."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def check_batch(images: torch.Tensor, seeds: Sequence[int] | None, default_seed: int) -> list[int]:
    """The seeds of a (B,3,H,W) batch (`default_seed` for every image when None); ValueError
    for a wrong shape or a wrong number of seeds."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B,3,H,W), got {tuple(images.shape)}")
    batch = images.shape[0]
    seeds = list(seeds) if seeds is not None else [default_seed] * batch
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for {batch} images")
    return seeds


def check_size(size_hw: tuple[int, int], min_size: int) -> None:
    """ImageError (with the --size that would do) if the shorter side is below `min_size`."""
    h, w = size_hw
    if min(h, w) < min_size:
        # the longest side that brings the shorter one up to min_size (long, thin images need more)
        needed = math.ceil(min_size * max(h, w) / max(1, min(h, w)))
        raise ImageError(
            f"the image is {w}x{h} pixels; the network needs at least {min_size} pixels per side",
            hint=f"use a larger image, or --size {max(needed, min_size * 4)} to scale it up",
        )


def noise_amplitude(param: str) -> float:
    """How far (± around mid-grey) a dream from noise starts: faint for a render (``fft``),
    stronger for the classic loop (``pixel``)."""
    return NOISE_AMPLITUDE if param == "fft" else PIXEL_NOISE_AMPLITUDE


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, per image (B,)."""
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dy + dx
