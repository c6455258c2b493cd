"""Gradient functions: given images, the gradient of the objective with respect to them.

The engine calls a `GradientFn` once per step; how the gradient is computed (eager,
reduced precision, tiled for huge images) is decided here, not in the engine.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from .objectives import Objective

__all__ = ["GradientFn", "EagerGradient", "make_gradient_fn", "total_variation"]

#: images (B,3,H,W) in [0,1] -> (gradient (B,3,H,W) float32, objective (B,) float32, detached)
GradientFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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
    """The gradient function for `objective` on `network` with the given settings."""
    extractor = network.extractor(objective.nodes)
    return EagerGradient(extractor, objective, tv_weight=tv_weight, transform=transform)
