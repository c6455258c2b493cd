"""The feature-visualisation render loop: optimise a parameterised image with Adam.

Where the classic loop (`dreamer.loops.deepdream`) nudges pixels along a normalised gradient,
octave by octave, a render holds the image in a parameterisation (Fourier coefficients of
decorrelated colours by default, see `dreamer.loops.parameterization`) and asks that the objective
be high *whatever small random transform the image then undergoes* (jitter, then with
``transforms="standard"`` the scale/rotation table of `dreamer.transforms`): only patterns that
survive being moved a little are rewarded, which is what turns noise into recognisable objects
(Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017).

With ``opacity_cost`` the image also has an opacity channel: each view lays it over a random
background and opacity has a price, so only what the objective needs stays opaque and the rest
fades to the grey the result is laid over (`BACKGROUND`), or to the ``backdrop`` the config
names: one object alone rather than a canvas full of its parts (the transparency of Mordvintsev
et al., "Differentiable Image Parameterizations", Distill 2018). Opacity costs more away from
the centre (`OPACITY_CENTRE`), so the object is not cut by the canvas's edge.

The network's part of each gradient comes from a `PreparedNetwork` (fast path, CUDA graphs,
tiling for tileable objectives), like the classic loop's; the transforms and the
parameterisation are differentiated here. Pure: never prints, never touches files.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import transforms as T
from ..backend import prepare
from ..config import DreamConfig, hex_rgb
from ..objectives import Objective, build_objective
from .common import Progress, ProgressFn, check_batch, check_size, make_generators, total_variation
from .parameterization import composite, make_parameterization

__all__ = ["render", "input_size", "opacity_penalty", "DEFAULT_INPUT_SIZE", "BACKGROUND", "OPACITY_CENTRE"]

#: The side of the ``crops`` views for a network without a model spec (`Network.from_module`).
DEFAULT_INPUT_SIZE = 224
#: The grey that a render with an opacity channel is laid over at the end.
BACKGROUND = 0.5
#: Opacity at the canvas's corners costs 1 + 2 x this as much as at the centre (the price
#: grows with the squared distance from the centre; 1 + this at the middle of an edge).
OPACITY_CENTRE = 2.0


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
    `config.learning_rate` on the loss ``-objective + tv_weight * TV(image)``, the objective
    averaged over `config.views` views of each image, each view a roll of up to `config.jitter`
    pixels and the random transforms `config.transforms` (``crops``: square crops of
    `config.crop` times the shorter side, rotated, mirrored, noisy, resampled to the network's
    input size, see `input_size`); `config.blur` > 0 blurs each step's gradient with that sigma
    (pixels); `config.grey_weight` adds that times the mean squared distance from mid-grey to
    the loss. `config.opacity_cost` > 0 adds an opacity channel (starting opaque): the views lay
    the image over random backgrounds and `opacity_penalty` is added to the loss; the result is
    laid over `BACKGROUND` (or over `config.backdrop`, which the views use too). Also uses
    `decorrelate`, `decay`, `precision`, `tile` and `seed`; `octaves`, `octave_scale` and
    `step_size` belong to the classic loop.

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
    transparent = config.opacity_cost > 0
    param = make_parameterization(
        config.param, start, decorrelate=config.decorrelate, decay=config.decay, opacity=transparent
    )
    optimizer = torch.optim.Adam(param.parameters(), lr=config.learning_rate)
    generators = make_generators(seeds)
    views = _Views(config, generators, input_size(backend.network), transparent=transparent)

    for step in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        image = param()
        x = _BlurGradient.apply(image, config.blur) if config.blur > 0 else image
        seen = views(x)
        # the network's gradient of each view from the backend (one call per view, so an
        # objective that compares the images of a batch sees one view of each), then back
        # through the transforms and the parameterisation; the loss is the mean over views
        loss = image.new_zeros(())
        score = None
        for v in seen:
            grad, s = backend.gradient(v.detach(), objective, precision=config.precision, tile=config.tile)
            loss = loss - (v * grad).sum() / len(seen)
            score = s if score is None else score + s
        score = score / len(seen)
        if config.tv_weight:
            loss = loss + config.tv_weight * total_variation(image[:, :3]).sum()
        if config.grey_weight:
            loss = loss + config.grey_weight * ((image[:, :3] - 0.5) ** 2).flatten(1).mean(1).sum()
        if transparent:
            loss = loss + config.opacity_cost * opacity_penalty(image[:, 3:]).sum()
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(Progress(0, 1, step, config.steps, step + 1, config.steps, score))

    with torch.no_grad():
        h, w = start.shape[-2:]
        backdrop = T.backdrop_image(views.backdrop, h, w).to(start.device) if views.backdrop else BACKGROUND
        return composite(param().float(), backdrop).clamp(0.0, 1.0)


def opacity_penalty(alpha: torch.Tensor) -> torch.Tensor:
    """(B,) the price of opacity `alpha` (B,1,H,W) in [0,1]: its mean, each pixel weighted by
    1 + `OPACITY_CENTRE` x (its squared distance from the centre, 1 at the middle of an edge)."""
    h, w = alpha.shape[-2:]
    y = torch.linspace(-1.0, 1.0, h, device=alpha.device, dtype=alpha.dtype).view(-1, 1)
    x = torch.linspace(-1.0, 1.0, w, device=alpha.device, dtype=alpha.dtype).view(1, -1)
    weight = 1.0 + OPACITY_CENTRE * (x**2 + y**2)
    return (alpha[:, 0] * weight).flatten(1).mean(1)


def input_size(network) -> int:
    """The side (pixels) of the views ``crops`` feeds `network`: the size its model was trained
    at (`ModelSpec.input_size`), 224 for a network without a spec."""
    spec = getattr(network, "spec", None)
    return int(spec.input_size) if spec is not None else DEFAULT_INPUT_SIZE


class _Views:
    """Each step's views of the images: `config.views` independent draws of the roll of up to
    `config.jitter` pixels followed by the random transforms `config.transforms`.

    Calling it draws new transforms and returns a list of `config.views` batches (B,3,h,w),
    the j-th view of every image in the j-th; every draw comes from the image's own generator.
    `transparent`: the images are RGBA, and the crops lay each view over a random background
    or `backdrop` (`config.backdrop` as RGB triples).
    """

    def __init__(
        self, config: DreamConfig, generators: Sequence[torch.Generator], size: int, *, transparent: bool = False
    ) -> None:
        self.generators = generators
        self.jitter = config.jitter
        self.count = config.views
        self.backdrop = [hex_rgb(c) for c in config.backdrop]
        self.standard = (
            [T.standard_transform(generators, config.jitter) for _ in range(config.views)]
            if config.transforms == "standard"
            else None
        )
        self.crops = (
            T.RandomCrops(
                generators,
                views=config.views,
                side=config.crop,
                size=size,
                angle=T.CROP_ANGLE,
                flip=T.CROP_FLIP,
                noise=T.CROP_NOISE,
                transparent=transparent,
                backdrop=self.backdrop,
            )
            if config.transforms == "crops"
            else None
        )

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.crops is not None:
            # one roll (the Fourier image is periodic, so it costs nothing), then the crops
            x = T.roll(x, T.draw_shifts(self.generators, self.jitter))
            self.crops.draw(tuple(x.shape[-2:]))
            return self.crops(x)
        out = []
        for j in range(self.count):
            v = T.roll(x, T.draw_shifts(self.generators, self.jitter))
            if self.standard is not None:
                self.standard[j].draw()
                v = self.standard[j](v)
            out.append(v)
        return out

