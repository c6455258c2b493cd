"""Gradient functions: given images, the gradient of the objective with respect to them.

The engine calls a `GradientFn` once per step; how the gradient is computed (eager,
reduced precision, tiled for huge images) is decided here, not in the engine.
"""

from __future__ import annotations

from collections.abc import Callable

import weakref

import torch
import torch.nn as nn

from ..objectives import Objective

__all__ = ["GradientFn", "EagerGradient", "make_gradient_fn", "total_variation"]

#: images (B,3,H,W) in [0,1] -> (gradient (B,3,H,W) float32, objective (B,) float32, detached)
GradientFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

# network module -> {nodes: stored activation bytes per pixel} (memory probes of the exact path)
_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, per image (B,)."""
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dy + dx


class EagerGradient:
    """The plain fp32 forward/backward of the classic recipe (the reference path).

    `transform`, if given, is applied inside the graph (random scale/rotate), so the gradient
    is taken with respect to the untransformed image.
    """

    def __init__(
        self,
        extractor: nn.Module,
        objective: Objective,
        *,
        tv_weight: float = 0.0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.extractor = extractor
        self.objective = objective
        self.tv_weight = tv_weight
        self.transform = transform

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        inp = self.transform(x) if self.transform is not None else x
        score = self.objective(self.extractor(inp))
        total = score - self.tv_weight * total_variation(x) if self.tv_weight else score
        (grad,) = torch.autograd.grad(total.sum(), x)
        return grad, score.detach()


def make_gradient_fn(
    network,
    objective: Objective,
    *,
    tv_weight: float = 0.0,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    precision: str = "fp32",
    tile: int | None = None,
) -> GradientFn:
    """The gradient function for `objective` on `network` with the given settings.

    - ``precision="fp32"``: `EagerGradient` on the network as it is, the exact reference path
      (same input -> bit-identical gradient).
    - ``auto``/``bf16``/``fp16``: `fast.FastGradient` on a BatchNorm-folded, channels_last copy
      under autocast (``auto``: bf16 on CUDA cards that support it, fp32 elsewhere); on CUDA,
      without random transforms, replayed from CUDA graphs captured per image shape.
    - Either is wrapped in `tiling.TiledGradient` when the layers can be tiled exactly: images
      that fit the memory budget (and `tile`) run whole, through the path above unchanged;
      bigger ones, or ones that run out of memory, are computed tile by tile.

    Fast-path functions without a random `transform` are cached per network, so calling this
    once per video frame reuses the prepared network and its CUDA graphs.
    """
    from . import fast, tiling

    device = network.device
    resolved = fast.resolve_precision(precision, device)
    layout = tiling.layout_for(network, objective)

    # your own modules are never copied for BatchNorm folding unless reduced precision asks for
    # the fast path: their forward may depend on more than their submodules
    if precision == "fp32" or (network.spec is None and resolved == "fp32"):
        extractor = network.extractor(objective.nodes)
        whole: GradientFn = EagerGradient(extractor, objective, tv_weight=tv_weight, transform=transform)
        if layout is None:
            return whole
        # the network as it is (no copy): remember its memory probe per network instead
        probes = _PROBES.setdefault(network.module, {})
        forward = fast.Forward(
            extractor, device, "fp32", channels_last=False,
            bytes_per_pixel=probes.get(objective.nodes),
            on_probe=lambda bpp: probes.__setitem__(objective.nodes, bpp),
        )
        return tiling.TiledGradient(
            whole, forward, objective, layout, tv_weight=tv_weight, transform=transform, tile=tile
        )

    def build() -> GradientFn:
        forward = fast.prepare_forward(network, objective.nodes, resolved)
        inner: GradientFn = fast.FastGradient(forward, objective, tv_weight=tv_weight, transform=transform)
        if device.type == "cuda" and transform is None:
            inner = fast.GraphedGradient(inner)  # type: ignore[arg-type]
        if layout is None:
            return inner
        return tiling.TiledGradient(
            inner, forward, objective, layout, tv_weight=tv_weight, transform=transform, tile=tile
        )

    if transform is not None:  # a fresh random transform each call: nothing to reuse but the network
        return build()
    key = ("gradient", fast.objective_key(objective), float(tv_weight), resolved, tile)
    return fast.cached_gradient(network, key, build)


