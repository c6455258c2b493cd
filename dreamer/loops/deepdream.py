"""The classic DeepDream loop: octave pyramid and normalised gradient ascent on pixels.

Data flow: images (B,3,H,W) RGB in [0,1] -> octaves small to large, `steps` steps each ->
images (B,3,H,W) in [0,1]. Normalisation for the network happens inside the model wrapper;
here values are only clamped to [0,1]. Gradients come from a `PreparedNetwork`. Pure: never
prints, never touches files; progress is reported through a callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .. import transforms as T
from ..backend import PreparedNetwork, prepare
from ..config import DreamConfig
from ..objectives import Objective, build_objective
from .common import Progress, ProgressFn, check_batch, check_size, make_generators, total_variation

__all__ = ["Progress", "ProgressFn", "OctavePlan", "plan_octaves", "octave_warning", "dream"]


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
    check_size(size_hw, min_size)
    h, w = size_hw
    sizes = []
    for i in range(octaves):
        f = scale**i
        size = (max(1, round(h / f)), max(1, round(w / f)))
        if min(size) < min_size:
            break
        sizes.append(size)
    return OctavePlan(tuple(reversed(sizes)), octaves)


def octave_warning(what: str, size_hw: tuple[int, int], config: DreamConfig, min_size: int) -> str | None:
    """The warning to show when an image (`what`, e.g. its file name) is too small for all of
    `config.octaves`, or None (it fits, or the config is a render, which has no octaves).
    An image too small for even one octave is an ImageError."""
    plan = plan_octaves(size_hw, config.octaves, config.octave_scale, min_size)
    if config.param != "pixel" or not plan.dropped:
        return None
    h, w = size_hw
    return (
        f"{what} ({w}x{h}) is too small for {config.octaves} octaves of scale "
        f"{config.octave_scale:g}; using {len(plan.sizes)}"
    )


def dream(
    images: torch.Tensor,
    network,
    config: DreamConfig = DreamConfig(),
    *,
    objective: Objective | None = None,
    seeds: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Dream on a batch of images with the classic recipe (``config.param == "pixel"``).

    `images`: (B,3,H,W) float RGB in [0,1], any device (never modified). `network`: a loaded
    Network, or a `PreparedNetwork` you hold across calls (a video: prepared once, not per
    frame). Returns a new (B,3,H,W) float32 tensor in [0,1] on the network's device. `seeds`
    gives one seed per image (default: `config.seed` for all); the same seeds, inputs and device
    give the same result (bit for bit with ``precision="fp32"``; on CUDA the fast path's
    autotuned kernels may differ in the last bits between runs). `objective` overrides the one
    built from `config.layers`/`config.classes`. Uses `octaves`, `octave_scale`, `steps`,
    `step_size`, `jitter`, `transforms`, `tv_weight`, `blur`, `precision`, `tile`, `seed`.
    """
    if config.param != "pixel":
        raise ValueError(f"the classic loop dreams on pixels, not param={config.param!r}: use dreamer.loops.run_config")
    seeds = check_batch(images, seeds, config.seed)
    backend = prepare(network)
    backend.refresh()
    base = images.detach().to(device=backend.device, dtype=torch.float32)
    plan = plan_octaves(tuple(base.shape[-2:]), config.octaves, config.octave_scale, backend.min_size)
    if objective is None:
        objective = build_objective(backend.network, config.layers, config.classes)
    generators = make_generators(seeds)
    transform = T.standard_transform(generators, config.jitter) if config.transforms == "standard" else None

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
            image, score = _step(image, backend, objective, config, generators, step_size, transform)
            done += 1
            if progress is not None:
                progress(Progress(octave, len(pyramid), step, config.steps, done, total, score))
        detail = image - octave_base
    return image


def _step(
    image: torch.Tensor,
    backend: PreparedNetwork,
    objective: Objective,
    config: DreamConfig,
    generators: Sequence[torch.Generator],
    step_size: float,
    transform: T.RandomScaleRotate | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the recipe: roll, gradient, normalise by mean |g| (per image), step, unroll, clamp.

    Every random choice of the step (roll, and the transform's scale/rotation) is drawn here,
    before the gradient, so a gradient computed twice (an out-of-memory retry) is the same."""
    shifts = T.draw_shifts(generators, config.jitter)
    if transform is not None:
        transform.draw()
    rolled = T.roll(image, shifts)
    if transform is None:
        grad, score = backend.gradient(rolled, objective, precision=config.precision, tile=config.tile)
    else:
        # the network sees the transformed image; its gradient is carried back through the transform
        x = rolled.detach().requires_grad_(True)
        seen = transform(x)
        grad_seen, score = backend.gradient(seen.detach(), objective, precision=config.precision, tile=config.tile)
        (grad,) = torch.autograd.grad(seen, x, grad_seen)
    if config.tv_weight:
        x = rolled.detach().requires_grad_(True)
        (grad_tv,) = torch.autograd.grad(total_variation(x).sum(), x)
        grad = grad - config.tv_weight * grad_tv
    if config.blur > 0:
        grad = T.gaussian_blur(grad, config.blur)
    scale = grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    rolled = rolled + (step_size / scale) * grad
    return T.roll(rolled, shifts, inverse=True).clamp(0.0, 1.0), score
