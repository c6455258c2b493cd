"""What a model is, as data: its layers, their depth and stride, its input normalisation,
where its weights come from, and which of its layers play which role in a dream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn

from ..errors import UnknownNameError

__all__ = [
    "LayerInfo",
    "ModelSpec",
    "PackagedWeights",
    "ROLES",
    "ROLE_PREFIX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: A layer name starting with this names a role (``@deep``) instead of a layer.
ROLE_PREFIX = "@"

#: The roles every registry model gives a layer to, shallow to deep, with what they are for.
#: ``default`` is the model's default layer and ``logits`` its class scores.
ROLES = {
    "shallow": "strokes, edges and fine textures",
    "lower": "swirls and repeating patterns",
    "middle": "patterns and object parts: the classic DeepDream layer",
    "upper": "eyes, faces and animal parts",
    "deep": "whole animals and objects",
    "default": "the model's default layer",
    "logits": "the class scores (class terms use it)",
}


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
class PackagedWeights:
    """Pretrained weights that come as a file inside an installed Python package (no download).

    `module` is the package's import name; `locate` the dotted attribute inside it that,
    called, returns the file's path; `requirement` the name pip knows it by; `install` the
    command that brings it.
    """

    module: str
    locate: str
    requirement: str
    install: str


@dataclass(frozen=True)
class ModelSpec:
    """A model in the registry: how to build it and everything known about it without running it.

    `stages` lists the module paths run in order by the truncated forward pass
    (the special name ``flatten`` flattens to (B, C)). `mean`/`std` normalise [0,1] RGB
    input for the network. `min_size` is the smallest image side dreamed on; `input_size`
    the side the network was trained at.

    Pretrained weights come either from `weights_url` (downloaded once by `fetch_pretrained`
    into the torch hub cache) or from `packaged` (a file in an installed package).
    `convert_state_dict` turns a published state dict into this module's key names;
    keys starting with one of `optional_keys` (auxiliary heads) may be missing from a file.
    `roles` maps each name of `ROLES` (except ``default`` and ``logits``) to a layer.
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
    input_size: int = 224
    packaged: PackagedWeights | None = None
    convert_state_dict: Callable[[dict], dict] | None = field(default=None, repr=False)
    optional_keys: tuple[str, ...] = ()
    roles: tuple[tuple[str, str], ...] = ()
    #: one line on where the class names come from when they are not ImageNet's usual ones
    categories_note: str = ""

    def role_layers(self) -> dict[str, str]:
        """role -> layer name, every role of `ROLES` included."""
        out = dict(self.roles)
        if self.default_layer:
            out["default"] = self.default_layer
        if any(i.name == "logits" for i in self.layers):
            out["logits"] = "logits"
        return out

    def resolve(self, layer: str) -> LayerInfo:
        """The layer called `layer` (its name or an alias, any case, or a role such as
        ``@deep``), known without building the network; UnknownNameError with the closest
        names otherwise."""
        if layer.startswith(ROLE_PREFIX):
            roles = self.role_layers()
            role = layer[len(ROLE_PREFIX):].lower()
            if role not in roles:
                raise UnknownNameError(
                    "role", layer, [ROLE_PREFIX + r for r in roles], listing=f"dreamer layers --model {self.name}"
                )
            return self.resolve(roles[role])
        key = layer.lower()
        for info in self.layers:
            if key == info.name.lower() or key in (a.lower() for a in info.aliases):
                return info
        names = [i.name for i in self.layers] + [a for i in self.layers for a in i.aliases]
        raise UnknownNameError("layer", layer, names, listing=f"dreamer layers --model {self.name}")
