"""The model registry: names -> specs, and `load_model`."""

from __future__ import annotations

import os

import torch

from ..errors import UnknownNameError
from .network import Network
from .spec import ModelSpec
from .weights import WeightsChoice, load_weights, parse_weights

__all__ = ["MODELS", "get_spec", "list_models", "load_model"]


def _googlenet() -> ModelSpec:
    from .googlenet import GOOGLENET

    return GOOGLENET


# name -> function returning the spec (imports stay lazy)
MODELS = {"googlenet": _googlenet}
DEFAULT_MODEL = "googlenet"


def list_models() -> list[str]:
    return sorted(MODELS)


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model; UnknownNameError (with close names) otherwise."""
    key = name.lower()
    if key not in MODELS:
        raise UnknownNameError("model", name, MODELS, listing="dreamer layers --help")
    return MODELS[key]()


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    weights: str | os.PathLike | WeightsChoice | None = "pretrained",
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Network:
    """Build a registry model with its weights, frozen, in eval mode, on `device`.

    `weights`: ``"pretrained"`` (downloaded once via torchvision into the torch hub cache,
    hash-checked), ``"random"``/``"random:SEED"`` (seeded random initialisation, for tests and
    benchmarks), or the path of a state-dict file. Raises WeightsError when they cannot be had.
    """
    spec = get_spec(name)
    choice = weights if isinstance(weights, WeightsChoice) else parse_weights(weights)
    module = spec.build()
    load_weights(module, spec, choice, progress=progress)
    network = Network(module, name=spec.name, weights=str(choice), mean=spec.mean, std=spec.std, spec=spec)
    return network.to(device)
