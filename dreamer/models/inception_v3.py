"""Inception v3 (Szegedy et al. 2015) as torchvision builds it, with torchvision's (and the
TensorFlow-slim) block names ``Mixed_5b`` ... ``Mixed_7c``.

Like GoogLeNet, torchvision's weights were ported from TensorFlow and expect input in
[-1, 1]; torchvision's ``transform_input`` turns ImageNet-normalised input back into that
range. ImageNet normalisation followed by ``transform_input`` is exactly ``2x - 1``, so the
network is built without it and normalised with mean = std = 0.5. Its convolutions are
mostly unpadded, so a layer's map is a little smaller than the input side / stride.
"""

from __future__ import annotations

import torch.nn as nn
from torchvision.models import Inception3, Inception_V3_Weights

from .spec import LayerInfo, ModelSpec
from .tvhub import fetcher, imagenet_categories, out_of_place

__all__ = ["INCEPTION_V3"]

_WEIGHTS = Inception_V3_Weights.IMAGENET1K_V1

# name, channels, stride, receptive field (px), measured by a forward pass (see the tests)
_TABLE = (
    ("Conv2d_1a_3x3", 32, 2, 3),
    ("Conv2d_2a_3x3", 32, 2, 7),
    ("Conv2d_2b_3x3", 64, 2, 11),
    ("maxpool1", 64, 4, 15),
    ("Conv2d_3b_1x1", 80, 4, 15),
    ("Conv2d_4a_3x3", 192, 4, 23),
    ("maxpool2", 192, 8, 31),
    ("Mixed_5b", 256, 8, 63),
    ("Mixed_5c", 288, 8, 95),
    ("Mixed_5d", 288, 8, 127),
    ("Mixed_6a", 768, 16, 159),
    ("Mixed_6b", 768, 16, 351),
    ("Mixed_6c", 768, 16, 543),
    ("Mixed_6d", 768, 16, 735),
    ("Mixed_6e", 768, 16, 927),
    ("Mixed_7a", 1280, 32, 1055),
    ("Mixed_7b", 2048, 32, 1183),
    ("Mixed_7c", 2048, 32, 1311),
)


def _build() -> nn.Module:
    # the auxiliary head is kept so torchvision's state dict loads strictly; it never runs
    return out_of_place(Inception3(num_classes=1000, aux_logits=True, transform_input=False, init_weights=False))


def _fetch(progress: bool) -> dict:
    return fetcher(_WEIGHTS)(progress)


INCEPTION_V3 = ModelSpec(
    name="inception-v3",
    description="Inception v3 (torchvision, ImageNet-1k, trained at 299 px)",
    build=_build,
    stages=tuple(name for name, *_ in _TABLE) + ("avgpool", "flatten", "dropout", "fc"),
    layers=tuple(LayerInfo(name, name, channels, stride, rf) for name, channels, stride, rf in _TABLE)
    + (LayerInfo("logits", "fc", 1000, None, None, ("fc",)),),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    min_size=75,
    input_size=299,
    weights_url=_WEIGHTS.url,
    fetch_pretrained=_fetch,
    categories=imagenet_categories(),
    default_layer="Mixed_6c",
    optional_keys=("AuxLogits.",),
    roles=(("shallow", "Mixed_5b"), ("lower", "Mixed_5d"), ("middle", "Mixed_6c"), ("upper", "Mixed_6e"), ("deep", "Mixed_7b")),
)
