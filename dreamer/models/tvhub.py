"""What every torchvision-built model shares: weights through torchvision's weights enum
(downloaded once into the torch hub cache, hash-checked), its ImageNet class names, and
ReLUs that do not overwrite the activations dreamer reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

__all__ = ["fetcher", "out_of_place", "imagenet_categories"]


def fetcher(weights: Any) -> Callable[[bool], dict]:
    """A function returning the state dict of a torchvision weights enum member: downloaded
    once into the torch hub cache, its sha256 prefix checked on download."""

    def fetch(progress: bool) -> dict:
        return weights.get_state_dict(progress=progress, check_hash=True, map_location="cpu", weights_only=True)

    return fetch


def out_of_place(module: nn.Module) -> nn.Module:
    """Make every ReLU module compute a new tensor: torchvision builds them in place, which
    would overwrite a convolution's output that an objective reads (``conv4_3`` and a deeper
    layer in one dream would otherwise see ``relu4_3`` for both)."""
    for m in module.modules():
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            m.inplace = False
    return module


def imagenet_categories() -> tuple[str, ...]:
    """ImageNet-1k's class names in torchvision's order (offline: they come with the package)."""
    from torchvision.models import GoogLeNet_Weights

    return tuple(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])
