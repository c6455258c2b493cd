"""The feature-visualisation render loop: optimise a parameterised image with Adam.

Where the classic engine (`dreamer.loops.deepdream`) nudges pixels along a normalised gradient,
octave by octave, a render holds the image in a parameterisation (Fourier coefficients of
decorrelated colours by default, see `dreamer.loops.parameterization`) and asks that the objective
be high *whatever small random transform the image then undergoes* (jitter, scale, rotation):
only patterns that survive being moved a little are rewarded, which is what turns noise into
recognisable objects (Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017).

Pure: never prints, never touches files. Progress is reported through a callback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from .. import transforms as T
from ..config import DreamConfig
from .deepdream import Progress, ProgressFn, make_generators, plan_octaves
from ..backend.gradients import total_variation
from ..objectives import Objective, build_objective
from .parameterization import make_parameterization

__all__ = ["render", "make_render_transform", "RENDER_SCALES", "RENDER_ANGLES", "NOISE_AMPLITUDE"]

#: Random scales (>1 enlarges) of the ``standard`` transforms, one drawn per image and step.
RENDER_SCALES = tuple(1.0 + i / 40.0 for i in range(-4, 5))  # 0.9 ... 1.1
#: Random rotations (degrees) of the ``standard`` transforms, one drawn per image and step.
RENDER_ANGLES = tuple(float(a) for a in range(-10, 11))

#: Amplitude (± around mid-grey) of the noise a render from noise should start from. A render
#: reproduces its start exactly and nothing pulls pixel grain back out, so the ±0.1 noise of a
#: classic dream would stay in the picture as film grain; the literature starts from a nearly
#: uniform grey (a spectrum of a few hundredths), which this matches.
NOISE_AMPLITUDE = 0.01

Transform = Callable[[torch.Tensor], torch.Tensor]


def _draw(generator: torch.Generator, n: int) -> int:
    return int(torch.randint(n, (1,), generator=generator))


def make_render_transform(kind: str, jitter: int, generators: Sequence[torch.Generator]) -> Transform:
    """The random transform applied (differentiably) before every forward pass.

    - ``none``: only a cyclic shift of up to `jitter` pixels each way;
    - ``standard``: that shift, then a random scale (`RENDER_SCALES`) and rotation
      (`RENDER_ANGLES`) about the centre, then a small second shift (a quarter of `jitter`),
      so the rescaled pixel grid does not line up with the network's strides.

    Each image draws from its own generator, so its transforms depend only on its own seed.
    """
    fine = jitter // 4 if kind == "standard" else 0

    def transform(x: torch.Tensor) -> torch.Tensor:
        x = T.roll(x, T.draw_shifts(generators, jitter))
        if kind == "standard":
            scale = torch.tensor([RENDER_SCALES[_draw(g, len(RENDER_SCALES))] for g in generators])
            angle = torch.tensor([RENDER_ANGLES[_draw(g, len(RENDER_ANGLES))] for g in generators])
            x = T.affine(x, scale=scale, angle_deg=angle, padding="reflection")
            x = T.roll(x, T.draw_shifts(generators, fine))
        return x

    return transform


class _BlurGradient(torch.autograd.Function):
    """Identity forward; Gaussian-blurred gradient backward (a low-pass on each update)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sigma: float) -> torch.Tensor:  # type: ignore[override]
        ctx.sigma = sigma
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return T.gaussian_blur(grad, ctx.sigma), None


def _autocast(precision: str, device: torch.device):
    """Reduced precision for the network's forward pass, on CUDA only (``auto`` as in
    `fast.resolve_precision`: bf16 on cards with native bf16, else fp32)."""
    from ..backend.fast import resolve_precision

    resolved = resolve_precision(precision, device)
    if device.type != "cuda" or resolved == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.float16 if resolved == "fp16" else torch.bfloat16)


def _loss_scale(precision: str, device: torch.device) -> float:
    # fp16 gradients of averaged objectives underflow unless the loss is scaled; Adam's steps
    # do not change when the loss is multiplied by a constant, so it is never divided out
    from ..backend.fast import FP16_LOSS_SCALE

    return FP16_LOSS_SCALE if device.type == "cuda" and precision == "fp16" else 1.0


def render(
    images: torch.Tensor,
    network,
    config: DreamConfig = DreamConfig(param="fft", transforms="standard", steps=256),
    *,
    objective: Objective | None = None,
    seeds: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Grow the objective in images held in the parameterisation `config.param`.

    `images`: (B,3,H,W) float RGB in [0,1], any device (never modified): the start. The
    parameterisation is initialised to reproduce it (within 0.01), so a photo turns into
    what the objective asks for and noise grows into it. Runs `config.steps` Adam steps of
    learning rate `config.learning_rate` on the loss ``-objective + tv_weight * TV(image)``,
    each through the random transforms `config.transforms` (`make_render_transform`);
    `config.blur` > 0 blurs each step's gradient with that sigma (pixels). `octaves`,
    `octave_scale`, `step_size` and `tile` are not used.

    Returns a new (B,3,H,W) float32 tensor in [0,1] on the network's device. `seeds` gives one
    seed per image (default `config.seed` for all); each image depends only on its own seed.
    On the CPU the same seed and start give the same result bit for bit; on CUDA the backward
    pass of the rotation/scale sampling adds in a varying order, so the last bits may differ.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B,3,H,W), got {tuple(images.shape)}")
    batch = images.shape[0]
    seeds = list(seeds) if seeds is not None else [config.seed] * batch
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for {batch} images")
    device = network.device
    plan_octaves(tuple(images.shape[-2:]), 1, 2.0, network.min_size)  # ImageError if too small
    if objective is None:
        objective = build_objective(network, config.layers, config.classes)
    extractor = network.extractor(objective.nodes)
    start = images.detach().to(device=device, dtype=torch.float32)
    param = make_parameterization(config.param, start, decorrelate=config.decorrelate)
    optimizer = torch.optim.Adam(param.parameters(), lr=config.learning_rate)
    transform = make_render_transform(config.transforms, config.jitter, make_generators(seeds))
    scale = _loss_scale(config.precision, device)

    for step in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        image = param()
        x = _BlurGradient.apply(image, config.blur) if config.blur > 0 else image
        with _autocast(config.precision, device):
            score = objective(extractor(transform(x))).float()
        loss = -score.sum()
        if config.tv_weight:
            loss = loss + config.tv_weight * total_variation(image).sum()
        (loss * scale).backward()
        optimizer.step()
        if progress is not None:
            progress(Progress(0, 1, step, config.steps, step + 1, config.steps, score.detach()))

    with torch.no_grad():
        return param().float().clamp(0.0, 1.0)
