"""VGG-16 and VGG-19 (Simonyan & Zisserman 2014) as torchvision builds them, with the layer
names of the original Caffe models: ``conv4_3`` (the convolution), ``relu4_3`` (after its
ReLU), ``pool4``, ``fc6``, ``fc7`` and ``logits`` (``fc8``). ImageNet mean/std input."""

from __future__ import annotations

from torchvision.models import VGG16_Weights, VGG19_Weights, vgg16, vgg19

from .spec import IMAGENET_MEAN, IMAGENET_STD, LayerInfo, ModelSpec
from .tvhub import fetcher, imagenet_categories, out_of_place

__all__ = ["VGG16", "VGG19"]

# convolutions per block (each 3x3, stride 1, padding 1; a 2x2 max pool ends each block)
_BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)


def _tables(depth: int) -> tuple[tuple[str, ...], tuple[LayerInfo, ...]]:
    stages: list[str] = []
    layers: list[LayerInfo] = []
    index, rf, jump = 0, 1, 1
    for block, (convs, width) in enumerate(zip(_BLOCKS[depth], _WIDTHS), 1):
        for c in range(1, convs + 1):
            rf += 2 * jump
            conv, relu = f"features.{index}", f"features.{index + 1}"
            layers.append(LayerInfo(f"conv{block}_{c}", conv, width, jump, rf, (conv,)))
            layers.append(LayerInfo(f"relu{block}_{c}", relu, width, jump, rf, (relu,)))
            stages += [conv, relu]
            index += 2
        rf += jump
        jump *= 2
        pool = f"features.{index}"
        layers.append(LayerInfo(f"pool{block}", pool, width, jump, rf, (pool,)))
        stages.append(pool)
        index += 1
    stages += ["avgpool", "flatten"] + [f"classifier.{i}" for i in range(7)]
    layers += [
        LayerInfo("fc6", "classifier.0", 4096, None, None, ("classifier.0",)),
        LayerInfo("relu6", "classifier.1", 4096, None, None, ("classifier.1",)),
        LayerInfo("fc7", "classifier.3", 4096, None, None, ("classifier.3",)),
        LayerInfo("relu7", "classifier.4", 4096, None, None, ("classifier.4",)),
        LayerInfo("logits", "classifier.6", 1000, None, None, ("fc8", "classifier.6")),
    ]
    return tuple(stages), tuple(layers)


def _spec(depth: int, builder, weights, roles: tuple) -> ModelSpec:
    stages, layers = _tables(depth)
    return ModelSpec(
        name=f"vgg{depth}",
        description=f"VGG-{depth} (torchvision, ImageNet-1k): large, plain convolutions; strong high-level dreams",
        build=lambda: out_of_place(builder(weights=None)),
        stages=stages,
        layers=layers,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        min_size=32,
        weights_url=weights.url,
        fetch_pretrained=fetcher(weights),
        categories=imagenet_categories(),
        default_layer="relu4_3" if depth == 16 else "relu4_4",
        roles=roles,
    )


VGG16 = _spec(
    16, vgg16, VGG16_Weights.IMAGENET1K_V1,
    (("shallow", "relu3_3"), ("lower", "relu4_1"), ("middle", "relu4_3"), ("upper", "relu5_2"), ("deep", "relu5_3")),
)
VGG19 = _spec(
    19, vgg19, VGG19_Weights.IMAGENET1K_V1,
    (("shallow", "relu3_4"), ("lower", "relu4_2"), ("middle", "relu4_4"), ("upper", "relu5_2"), ("deep", "relu5_4")),
)
