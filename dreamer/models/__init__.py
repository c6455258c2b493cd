"""Models: the registry, weights, and truncated forward passes."""

from .network import Network
from .registry import get_spec, list_models, load_model
from .spec import ROLES, LayerInfo, ModelSpec, PackagedWeights
from .weights import WeightsChoice, cache_path, parse_weights, weights_status

__all__ = [
    "Network",
    "LayerInfo",
    "ModelSpec",
    "PackagedWeights",
    "ROLES",
    "WeightsChoice",
    "cache_path",
    "get_spec",
    "list_models",
    "load_model",
    "parse_weights",
    "weights_status",
]
