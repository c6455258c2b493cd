"""The feature-visualisation render loop: optimise a parameterised image with Adam.

Where the classic loop (`dreamer.loops.deepdream`) nudges pixels along a normalised gradient,
octave by octave, a render holds the image in a parameterisation (Fourier coefficients of
decorrelated colours by default, see `dreamer.loops.parameterization`) and asks that the objective
be high *whatever small random transform the image then undergoes* (jitter, then with
``transforms="standard"`` the scale/rotation table of `dreamer.transforms`): only patterns that
survive being moved a little are rewarded, which is what turns noise into recognisable objects
(Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017).

The network's part of each gradient comes from a `PreparedNetwork` (fast path, CUDA graphs,
tiling for tileable objectives), like the classic loop's; the transforms and the
parameterisation are differentiated here. Pure: never prints, never touches files.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import transforms as T
from ..backend import prepare
from ..config import DreamConfig
from ..objectives import Objective, build_objective
from .common import Progress, ProgressFn, check_batch, check_size, make_generators, total_variation
from .parameterization import make_parameterization

__all__ = ["render"]


class _BlurGradient(torch.autograd.Function):
    """Identity forward; Gaussian-blurred gradient backward (a low-pass on each update)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sigma: float) -> torch.Tensor:  # type: ignore[override]
        ctx.sigma = sigma
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return T.gaussian_blur(grad, ctx.sigma), None


def render(
    images: torch.Tensor,
    network,
    config: DreamConfig = DreamConfig(param="fft", transforms="standard", steps=256),
    *,
    objective: Objective | None = None,
    seeds: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Grow the objective in images held in the parameterisation `config.param` (fft or pixel).

    `images`: (B,3,H,W) float RGB in [0,1], any device (never modified): the start. The
    parameterisation is initialised to reproduce it (within 0.01), so a photo turns into
    what the objective asks for and noise grows into it. `network`: a loaded Network or a
    `PreparedNetwork` you hold. Runs `config.steps` Adam steps of learning rate
    `config.learning_rate` on the loss ``-objective + tv_weight * TV(image)``, each through a
    roll of up to `config.jitter` pixels and the random transforms `config.transforms`;
    `config.blur` > 0 blurs each step's gradient with that sigma (pixels). Also uses
    `decorrelate`, `precision`, `tile` and `seed`; `octaves`, `octave_scale` and `step_size`
    belong to the classic loop.

    Returns a new (B,3,H,W) float32 tensor in [0,1] on the network's device. `seeds` gives one
    seed per image (default `config.seed` for all); each image depends only on its own seed.
    On the CPU the same seed and start give the same result bit for bit; on CUDA the backward
    pass of the rotation/scale sampling adds in a varying order, so the last bits may differ.
    """
    seeds = check_batch(images, seeds, config.seed)
    backend = prepare(network)
    backend.refresh()
    check_size(tuple(images.shape[-2:]), backend.min_size)
    if objective is None:
        objective = build_objective(backend.network, config.layers, config.classes)
    start = images.detach().to(device=backend.device, dtype=torch.float32)
    param = make_parameterization(config.param, start, decorrelate=config.decorrelate)
    optimizer = torch.optim.Adam(param.parameters(), lr=config.learning_rate)
    generators = make_generators(seeds)
    standard = T.standard_transform(generators, config.jitter) if config.transforms == "standard" else None

    for step in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        image = param()
        x = _BlurGradient.apply(image, config.blur) if config.blur > 0 else image
        x = T.roll(x, T.draw_shifts(generators, config.jitter))
        if standard is not None:
            standard.draw()
            x = standard(x)
        # the network's gradient from the backend, then back through transforms and parameters
        grad, score = backend.gradient(x.detach(), objective, precision=config.precision, tile=config.tile)
        loss = -(x * grad).sum()
        if config.tv_weight:
            loss = loss + config.tv_weight * total_variation(image).sum()
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(Progress(0, 1, step, config.steps, step + 1, config.steps, score))

    with torch.no_grad():
        return param().float().clamp(0.0, 1.0)
