"""What a model is, as data: its layers, their depth and stride, its input normalisation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn

from ..errors import UnknownNameError

__all__ = ["LayerInfo", "ModelSpec", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LayerInfo:
    """One layer people can dream about.

    `name` is the user-facing name, `node` the module path inside the network,
    `channels` the depth of its output, `stride` its downsampling relative to the input
    (None for global outputs such as logits), `receptive_field` the side in pixels of the
    input region that one output position can see (None if global or unknown).
    """

    name: str
    node: str
    channels: int | None
    stride: int | None
    receptive_field: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def spatial(self) -> bool:
        """Whether the layer's output is a feature map (rather than a vector such as logits)."""
        return self.stride is not None


@dataclass(frozen=True)
class ModelSpec:
    """A model in the registry: how to build it and everything known about it without running it.

    `stages` lists the module paths run in order by the truncated forward pass
    (the special name ``flatten`` flattens to (B, C)). `mean`/`std` normalise [0,1] RGB
    input for the network. `min_size` is the smallest image side dreamed on.
    """

    name: str
    description: str
    build: Callable[[], nn.Module]
    stages: tuple[str, ...]
    layers: tuple[LayerInfo, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    min_size: int
    weights_url: str | None = None
    #: downloads (once, into the torch hub cache, hash-checked) and returns the pretrained state dict
    fetch_pretrained: Callable[[bool], dict] | None = field(default=None, repr=False)
    categories: tuple[str, ...] = field(default=(), repr=False)
    default_layer: str = ""

    def resolve(self, layer: str) -> LayerInfo:
        """The layer called `layer` (its name or an alias, any case), known without building
        the network; UnknownNameError with the closest names otherwise."""
        key = layer.lower()
        for info in self.layers:
            if key == info.name.lower() or key in (a.lower() for a in info.aliases):
                return info
        names = [i.name for i in self.layers] + [a for i in self.layers for a in i.aliases]
        raise UnknownNameError("layer", layer, names, listing=f"dreamer layers --model {self.name}")
