"""The dream engine: octave pyramid and gradient ascent. Pure: never prints, never touches files.

Data flow: images (B,3,H,W) RGB in [0,1] -> octaves small to large, `steps` steps each ->
images (B,3,H,W) in [0,1]. Normalisation for the network happens inside the model wrapper;
here values are only clamped to [0,1]. Progress is reported through a callback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .. import transforms as T
from ..config import DreamConfig
from ..errors import ImageError
from ..backend.gradients import GradientFn, make_gradient_fn
from ..objectives import Objective, build_objective

__all__ = ["Progress", "ProgressFn", "OctavePlan", "plan_octaves", "dream", "make_generators"]


@dataclass(frozen=True)
class Progress:
    """One finished step. `objective` is the (B,) score before the step (a device tensor:
    reading it waits for the device, so only read it when needed)."""

    octave: int
    octaves: int
    step: int
    steps: int
    done: int
    total: int
    objective: torch.Tensor | None = None


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class OctavePlan:
    """Octave sizes (height, width), smallest first; `dropped` octaves were too small to use."""

    sizes: tuple[tuple[int, int], ...]
    requested: int

    @property
    def dropped(self) -> int:
        return self.requested - len(self.sizes)


def plan_octaves(size_hw: tuple[int, int], octaves: int, scale: float, min_size: int) -> OctavePlan:
    """Sizes of the octave pyramid for an image of `size_hw`, smallest first.

    Octaves whose shorter side would fall below `min_size` are dropped (see `OctavePlan.dropped`);
    an image whose own shorter side is below `min_size` is an ImageError.
    """
    h, w = size_hw
    if min(h, w) < min_size:
        # the longest side that brings the shorter one up to min_size (long, thin images need more)
        needed = math.ceil(min_size * max(h, w) / max(1, min(h, w)))
        raise ImageError(
            f"the image is {w}x{h} pixels; the network needs at least {min_size} pixels per side",
            hint=f"use a larger image, or --size {max(needed, min_size * 4)} to scale it up",
        )
    sizes = []
    for i in range(octaves):
        f = scale**i
        size = (max(1, round(h / f)), max(1, round(w / f)))
        if min(size) < min_size:
            break
        sizes.append(size)
    return OctavePlan(tuple(reversed(sizes)), octaves)


def max_octaves(size_hw: tuple[int, int], scale: float, min_size: int) -> int:
    """The most octaves an image of this size can have."""
    return max(1, int(math.floor(math.log(min(size_hw) / min_size, scale))) + 1)


def make_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image, so each image's jitter depends only on its own seed."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def _transform_for(config: DreamConfig, generators: Sequence[torch.Generator]) -> T.RandomScaleRotate | None:
    return T.RandomScaleRotate(generators) if config.transforms == "standard" else None


def dream(
    images: torch.Tensor,
    network,
    config: DreamConfig = DreamConfig(),
    *,
    objective: Objective | None = None,
    seeds: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    gradient_fn: GradientFn | None = None,
) -> torch.Tensor:
    """Dream on a batch of images.

    `images`: (B,3,H,W) float RGB in [0,1], any device (never modified). Returns a new
    (B,3,H,W) float32 tensor in [0,1] on the network's device. `seeds` gives one seed per
    image (default: `config.seed` for all); the same seeds, inputs and device give the same
    result (bit for bit with ``precision="fp32"``; on CUDA the fast path's autotuned kernels may
    differ in the last bits between runs). `objective` overrides the one built from
    `config.layers`/`config.classes`.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B,3,H,W), got {tuple(images.shape)}")
    if config.param == "fft":
        from .render import render

        return render(images, network, config, objective=objective, seeds=seeds, progress=progress)
    batch = images.shape[0]
    seeds = list(seeds) if seeds is not None else [config.seed] * batch
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for {batch} images")
    device = network.device
    base = images.detach().to(device=device, dtype=torch.float32)
    plan = plan_octaves(tuple(base.shape[-2:]), config.octaves, config.octave_scale, network.min_size)
    if objective is None:
        objective = build_objective(network, config.layers, config.classes)
    generators = make_generators(seeds)
    transform = None  # only the gradient function built here uses the config's transform
    if gradient_fn is None:
        transform = _transform_for(config, generators)
        gradient_fn = make_gradient_fn(
            network,
            objective,
            tv_weight=config.tv_weight,
            transform=transform,
            precision=config.precision,
            tile=config.tile,
        )

    # the pyramid of the original, largest first; detail carries what the dream added
    pyramid = [base]
    for size in reversed(plan.sizes[:-1]):
        pyramid.append(T.resize(pyramid[-1], size))
    pyramid.reverse()

    step_size = config.step_size / 255.0  # the recipe's step is in 0-255 pixel units
    total = len(plan.sizes) * config.steps
    done = 0
    detail = torch.zeros_like(pyramid[0])
    image = pyramid[0]
    for octave, octave_base in enumerate(pyramid):
        detail = T.resize(detail, tuple(octave_base.shape[-2:]))
        image = (octave_base + detail).clamp(0.0, 1.0)
        for step in range(config.steps):
            image, score = _step(image, gradient_fn, generators, config.jitter, step_size, config.blur, transform)
            done += 1
            if progress is not None:
                progress(Progress(octave, len(pyramid), step, config.steps, done, total, score))
        detail = image - octave_base
    return image


def _step(
    image: torch.Tensor,
    gradient_fn: GradientFn,
    generators: Sequence[torch.Generator],
    jitter: int,
    step_size: float,
    blur: float,
    transform: T.RandomScaleRotate | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the recipe: roll, gradient, normalise by mean |g| (per image), step, unroll, clamp.

    Every random choice of the step (roll, and the transform's scale/rotation) is drawn here,
    before the gradient, so a gradient computed twice (an out-of-memory retry) is the same."""
    shifts = T.draw_shifts(generators, jitter)
    if transform is not None:
        transform.draw()
    rolled = T.roll(image, shifts)
    grad, score = gradient_fn(rolled)
    if blur > 0:
        grad = T.gaussian_blur(grad, blur)
    scale = grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    rolled = rolled + (step_size / scale) * grad
    return T.roll(rolled, shifts, inverse=True).clamp(0.0, 1.0), score
