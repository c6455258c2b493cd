"""GoogLeNet (Inception v1), as torchvision builds it, with the DeepDream/Lucid layer names.

torchvision's pretrained weights were ported from the original network, which took input in
[-1, 1]: torchvision's ``transform_input`` maps ImageNet-normalised input back to that range.
Composed, ImageNet normalisation followed by ``transform_input`` is exactly ``2x - 1``, so we
build the network without ``transform_input`` and normalise with mean = std = 0.5 ourselves.
"""

from __future__ import annotations

import torch.nn as nn
from torchvision.models import GoogLeNet, GoogLeNet_Weights

from .spec import LayerInfo, ModelSpec

__all__ = ["GOOGLENET"]

_WEIGHTS = GoogLeNet_Weights.IMAGENET1K_V1

# name, node, channels, stride, receptive field (px), aliases
_TABLE = (
    ("conv1", "conv1", 64, 2, 7, ("conv2d0",)),
    ("pool1", "maxpool1", 64, 4, 11, ("maxpool0",)),
    ("conv2", "conv2", 64, 4, 11, ("conv2d1",)),
    ("conv3", "conv3", 192, 4, 19, ("conv2d2",)),
    ("pool2", "maxpool2", 192, 8, 27, ("maxpool1b",)),
    ("mixed3a", "inception3a", 256, 8, 43, ()),
    ("mixed3b", "inception3b", 480, 8, 59, ()),
    ("pool3", "maxpool3", 480, 16, 75, ()),
    ("mixed4a", "inception4a", 512, 16, 107, ()),
    ("mixed4b", "inception4b", 512, 16, 139, ()),
    ("mixed4c", "inception4c", 512, 16, 171, ()),
    ("mixed4d", "inception4d", 528, 16, 203, ()),
    ("mixed4e", "inception4e", 832, 16, 235, ()),
    ("pool4", "maxpool4", 832, 32, 251, ()),  # torchvision's maxpool4 is 2x2
    ("mixed5a", "inception5a", 832, 32, 315, ()),
    ("mixed5b", "inception5b", 1024, 32, 379, ()),
    ("logits", "fc", 1000, None, None, ("softmax2_pre_activation",)),
)


def _layers() -> tuple[LayerInfo, ...]:
    out = []
    for name, node, channels, stride, rf, aliases in _TABLE:
        # torchvision's own module name is always an alias (unless it is the name itself)
        extra = (node,) if node != name else ()
        out.append(LayerInfo(name, node, channels, stride, rf, extra + aliases))
    return tuple(out)


def _build() -> nn.Module:
    # aux heads are kept so that torchvision's state dict (which has them) loads strictly;
    # they are never run (the truncated forward does not visit them).
    return GoogLeNet(num_classes=1000, aux_logits=True, transform_input=False, init_weights=False)


def _fetch_pretrained(progress: bool) -> dict:
    # torchvision's weights API: torch hub cache, sha256 prefix checked on download
    return _WEIGHTS.get_state_dict(progress=progress, check_hash=True, map_location="cpu", weights_only=True)


GOOGLENET = ModelSpec(
    name="googlenet",
    description="GoogLeNet / Inception v1 (torchvision, ImageNet-1k), the original DeepDream network",
    build=_build,
    stages=(
        "conv1", "maxpool1", "conv2", "conv3", "maxpool2",
        "inception3a", "inception3b", "maxpool3",
        "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
        "inception5a", "inception5b", "avgpool", "flatten", "dropout", "fc",
    ),
    layers=_layers(),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    min_size=32,
    weights_url=_WEIGHTS.url,
    fetch_pretrained=_fetch_pretrained,
    categories=tuple(_WEIGHTS.meta["categories"]),
    default_layer="mixed4c",
    optional_keys=("aux1.", "aux2."),
    roles=(("shallow", "mixed3a"), ("lower", "mixed3b"), ("middle", "mixed4c"), ("upper", "mixed4d"), ("deep", "mixed5a")),
)
