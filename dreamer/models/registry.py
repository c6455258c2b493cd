"""The model registry: names -> specs, and `load_model`."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

import torch

from ..errors import UnknownNameError
from .network import Network
from .spec import ModelSpec
from .weights import WeightsChoice, load_weights, parse_weights

__all__ = ["MODELS", "build_empty", "get_spec", "list_models", "load_model"]


def _spec(module: str, attribute: str) -> Callable[[], ModelSpec]:
    def get() -> ModelSpec:
        return getattr(importlib.import_module(f"{__package__}.{module}"), attribute)

    return get


# name -> function returning the spec (imports stay lazy: `dreamer --help` loads no torchvision)
MODELS: dict[str, Callable[[], ModelSpec]] = {
    "googlenet": _spec("googlenet", "GOOGLENET"),
    "inceptionv1": _spec("inceptionv1", "INCEPTIONV1"),
    "inception-v3": _spec("inception_v3", "INCEPTION_V3"),
    "vgg16": _spec("vgg", "VGG16"),
    "vgg19": _spec("vgg", "VGG19"),
    "resnet50": _spec("resnet", "RESNET50"),
    "alexnet": _spec("alexnet", "ALEXNET"),
    "efficientnet-lite0": _spec("efficientnet_lite", "LITE0"),
    "efficientnet-lite1": _spec("efficientnet_lite", "LITE1"),
    "efficientnet-lite2": _spec("efficientnet_lite", "LITE2"),
}
DEFAULT_MODEL = "googlenet"


def list_models() -> list[str]:
    """Registered model names, in the order `dreamer models` lists them."""
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model; UnknownNameError (with close names) otherwise."""
    key = name.lower().replace("_", "-")
    if key not in MODELS:
        raise UnknownNameError("model", name, MODELS, listing="dreamer models")
    return MODELS[key]()


def build_empty(spec: ModelSpec) -> torch.nn.Module:
    """The spec's module on the CPU with every parameter and buffer zero, ready for weights.

    Built on the meta device first: the builder's own random initialisation (seconds for
    VGG's 100-million-weight fc6) would only be overwritten."""
    with torch.device("meta"):
        module = spec.build()
    module = module.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            tensor.zero_()
    return module


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    weights: str | os.PathLike | WeightsChoice | None = "pretrained",
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Network:
    """Build a registry model with its weights, frozen, in eval mode, on `device`.

    `weights`: ``"pretrained"`` (downloaded once into the torch hub cache and hash-checked, or
    for efficientnet-lite read from the installed package that ships them),
    ``"random"``/``"random:SEED"`` (seeded random initialisation, for tests and benchmarks),
    or the path of a state-dict file. Raises WeightsError when they cannot be had.
    """
    spec = get_spec(name)
    choice = weights if isinstance(weights, WeightsChoice) else parse_weights(weights)
    module = build_empty(spec)
    load_weights(module, spec, choice, progress=progress)
    network = Network(module, name=spec.name, weights=str(choice), mean=spec.mean, std=spec.std, spec=spec)
    return network.to(device)
