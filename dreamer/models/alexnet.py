"""AlexNet (Krizhevsky et al. 2012; torchvision's one-tower version). Layers: ``conv1`` ...
``conv5`` (the convolutions), ``relu1`` ... ``relu5`` (after their ReLUs), ``pool1``,
``pool2``, ``pool5``, ``fc6``, ``fc7`` and ``logits`` (``fc8``). ImageNet mean/std input."""

from __future__ import annotations

from torchvision.models import AlexNet_Weights, alexnet

from .spec import IMAGENET_MEAN, IMAGENET_STD, LayerInfo, ModelSpec
from .tvhub import fetcher, imagenet_categories, out_of_place

__all__ = ["ALEXNET"]

_WEIGHTS = AlexNet_Weights.IMAGENET1K_V1

# name, node, channels, stride, receptive field (px)
_TABLE = (
    ("conv1", "features.0", 64, 4, 11),
    ("relu1", "features.1", 64, 4, 11),
    ("pool1", "features.2", 64, 8, 19),
    ("conv2", "features.3", 192, 8, 51),
    ("relu2", "features.4", 192, 8, 51),
    ("pool2", "features.5", 192, 16, 67),
    ("conv3", "features.6", 384, 16, 99),
    ("relu3", "features.7", 384, 16, 99),
    ("conv4", "features.8", 256, 16, 131),
    ("relu4", "features.9", 256, 16, 131),
    ("conv5", "features.10", 256, 16, 163),
    ("relu5", "features.11", 256, 16, 163),
    ("pool5", "features.12", 256, 32, 195),
)

ALEXNET = ModelSpec(
    name="alexnet",
    description="AlexNet (torchvision, ImageNet-1k): five convolutions, coarse and quick",
    build=lambda: out_of_place(alexnet(weights=None)),
    stages=tuple(f"features.{i}" for i in range(13)) + ("avgpool", "flatten") + tuple(f"classifier.{i}" for i in range(7)),
    layers=tuple(LayerInfo(n, node, c, s, rf, (node,)) for n, node, c, s, rf in _TABLE)
    + (
        LayerInfo("fc6", "classifier.1", 4096, None, None, ("classifier.1",)),
        LayerInfo("relu6", "classifier.2", 4096, None, None, ("classifier.2",)),
        LayerInfo("fc7", "classifier.4", 4096, None, None, ("classifier.4",)),
        LayerInfo("relu7", "classifier.5", 4096, None, None, ("classifier.5",)),
        LayerInfo("logits", "classifier.6", 1000, None, None, ("fc8", "classifier.6")),
    ),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    min_size=64,
    weights_url=_WEIGHTS.url,
    fetch_pretrained=fetcher(_WEIGHTS),
    categories=imagenet_categories(),
    default_layer="relu4",
    roles=(("shallow", "relu2"), ("lower", "relu3"), ("middle", "relu4"), ("upper", "relu5"), ("deep", "pool5")),
)
