"""ResNet-50 (He et al. 2015) as torchvision builds it (v1.5: the stride sits in each stage's
first 3x3 convolution). Layers: ``conv1`` (the stem convolution), ``relu`` (the stem after its
BatchNorm and ReLU), ``pool1``, every
bottleneck block as ``layer3.5`` (also ``layer3_5``), each stage's output as ``layer1`` ...
``layer4``, and ``logits``. ImageNet mean/std input."""

from __future__ import annotations

from torchvision.models import ResNet50_Weights, resnet50

from .spec import IMAGENET_MEAN, IMAGENET_STD, LayerInfo, ModelSpec
from .tvhub import fetcher, imagenet_categories, out_of_place

__all__ = ["RESNET50"]

_WEIGHTS = ResNet50_Weights.IMAGENET1K_V1
# (blocks, output channels, stride of the first block) per stage
_STAGES = ((3, 256, 1), (4, 512, 2), (6, 1024, 2), (3, 2048, 2))


def _tables() -> tuple[tuple[str, ...], tuple[LayerInfo, ...]]:
    stages = ["conv1", "bn1", "relu", "maxpool"]
    layers = [
        LayerInfo("conv1", "conv1", 64, 2, 7),
        LayerInfo("relu", "relu", 64, 2, 7, ("stem",)),
        LayerInfo("pool1", "maxpool", 64, 4, 11, ("maxpool",)),
    ]
    rf, jump = 11, 4
    for s, (blocks, channels, stride) in enumerate(_STAGES, 1):
        for b in range(blocks):
            rf += 2 * jump  # the block's one 3x3 convolution
            jump *= stride if b == 0 else 1
            node = f"layer{s}.{b}"
            stages.append(node)
            last = b == blocks - 1
            name = f"layer{s}" if last else node
            aliases = (node, f"layer{s}_{b}") if last else (f"layer{s}_{b}",)
            layers.append(LayerInfo(name, node, channels, jump, rf, aliases))
    stages += ["avgpool", "flatten", "fc"]
    layers.append(LayerInfo("logits", "fc", 1000, None, None, ("fc",)))
    return tuple(stages), tuple(layers)


_STAGE_NAMES, _LAYERS = _tables()

RESNET50 = ModelSpec(
    name="resnet50",
    description="ResNet-50 (torchvision, ImageNet-1k): residual blocks, layer1-layer4",
    build=lambda: out_of_place(resnet50(weights=None)),
    stages=_STAGE_NAMES,
    layers=_LAYERS,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    min_size=32,
    weights_url=_WEIGHTS.url,
    fetch_pretrained=fetcher(_WEIGHTS),
    categories=imagenet_categories(),
    default_layer="layer3.3",
    roles=(("shallow", "layer2"), ("lower", "layer3.1"), ("middle", "layer3.3"), ("upper", "layer3"), ("deep", "layer4.0")),
)
