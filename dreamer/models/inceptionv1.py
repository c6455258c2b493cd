"""InceptionV1 as Lucid and the 2015 TensorFlow DeepDream notebook know it (the ``inception5h``
graph): the original GoogLeNet without BatchNorm, with local response normalisation, true
5x5 branches and 1008 output classes. Its layer names and depths are Lucid's, so channel
numbers from Distill articles and Lucid notebooks (``mixed4a:476``) mean the same here:
mixed4a has 508 channels, mixed4b/c 512, mixed4d 528, mixed4e and mixed5a 832, mixed5b 1024.

Weights: the public PyTorch port of the TensorFlow graph that Lucent loads
(``inception5h.pth``, by ProGamerGov). That file names its parameters flat, one per
convolution (``mixed4a_3x3_pre_relu_conv.weight``); `convert_state_dict` maps those names
onto the blocks here (``mixed4a.conv_3x3.weight``), so the file loads with every key and
shape checked. The file's name carries no hash, so torch hub cannot check one.

Input: Lucid's range for this graph is [-117, 138], i.e. ``255 x - 117`` (mean 117/255,
std 1/255 per channel, RGB). Class names: Lucid's 1008-label list for this graph (a
different order from the usual ImageNet one) is not available offline, so classes are
named by index only (``class 0`` ... ``class 1007``); use indices for class terms.

Padding is TensorFlow's ``SAME`` (`ops.same_pad`), which for even sizes is exactly what the
port pads; the final 7x7 average pooling is a global average (the same at 224 px, and it
lets any image size reach the logits). Local response normalisation uses the port's
settings (size 9, alpha 1e-4, beta 0.5, k 1).
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn

from .ops import SamePad
from .spec import LayerInfo, ModelSpec

__all__ = ["InceptionV1", "INCEPTIONV1", "WEIGHTS_URL", "convert_state_dict", "published_names"]

WEIGHTS_URL = "https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth"

#: The branches of a mixed block, in the order their outputs are concatenated.
BRANCHES = ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce")

# name: input channels, 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool reduce
_MIXED = {
    "mixed3a": (192, 64, 96, 128, 16, 32, 32),
    "mixed3b": (256, 128, 128, 192, 32, 96, 64),
    "mixed4a": (480, 192, 96, 204, 16, 48, 64),
    "mixed4b": (508, 160, 112, 224, 24, 64, 64),
    "mixed4c": (512, 128, 128, 256, 24, 64, 64),
    "mixed4d": (512, 112, 144, 288, 32, 64, 64),
    "mixed4e": (528, 256, 160, 320, 32, 128, 128),
    "mixed5a": (832, 256, 160, 320, 48, 128, 128),
    "mixed5b": (832, 384, 192, 384, 48, 128, 128),
}


class ConvReLU(nn.Module):
    """A convolution with bias and TensorFlow SAME padding, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = SamePad(kernel, stride) if stride > 1 else nn.Identity()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=0 if stride > 1 else kernel // 2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(self.pad(x)))


class MaxPoolSame(nn.Module):
    """3x3 max pooling with TensorFlow SAME padding (the padding never wins the max)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.pad = SamePad(3, stride, value=float("-inf"))
        self.pool = nn.MaxPool2d(3, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.pad(x))


class Mixed(nn.Module):
    """An inception block: four branches (1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool -> 1x1),
    each ending in ReLU, concatenated along channels."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int) -> None:
        super().__init__()
        self.conv_1x1 = nn.Conv2d(cin, c1, 1)
        self.conv_3x3_bottleneck = nn.Conv2d(cin, c3r, 1)
        self.conv_3x3 = nn.Conv2d(c3r, c3, 3, padding=1)
        self.conv_5x5_bottleneck = nn.Conv2d(cin, c5r, 1)
        self.conv_5x5 = nn.Conv2d(c5r, c5, 5, padding=2)
        self.pool = MaxPoolSame(1)
        self.conv_pool_reduce = nn.Conv2d(cin, cp, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.relu
        b1 = r(self.conv_1x1(x))
        b3 = r(self.conv_3x3(r(self.conv_3x3_bottleneck(x))))
        b5 = r(self.conv_5x5(r(self.conv_5x5_bottleneck(x))))
        bp = r(self.conv_pool_reduce(self.pool(x)))
        return torch.cat((b1, b3, b5, bp), 1)


class InceptionV1(nn.Module):
    """Lucid's InceptionV1: (B,3,H,W) in [-117, 138] -> (B,1008) logits."""

    def __init__(self, num_classes: int = 1008) -> None:
        super().__init__()
        self.conv2d0 = ConvReLU(3, 64, 7, 2)
        self.maxpool0 = MaxPoolSame(2)
        self.localresponsenorm0 = nn.LocalResponseNorm(9, alpha=1e-4, beta=0.5, k=1.0)
        self.conv2d1 = ConvReLU(64, 64, 1)
        self.conv2d2 = ConvReLU(64, 192, 3)
        self.localresponsenorm1 = nn.LocalResponseNorm(9, alpha=1e-4, beta=0.5, k=1.0)
        self.maxpool1 = MaxPoolSame(2)
        self.mixed3a = Mixed(*_MIXED["mixed3a"])
        self.mixed3b = Mixed(*_MIXED["mixed3b"])
        self.maxpool4 = MaxPoolSame(2)
        self.mixed4a = Mixed(*_MIXED["mixed4a"])
        self.mixed4b = Mixed(*_MIXED["mixed4b"])
        self.mixed4c = Mixed(*_MIXED["mixed4c"])
        self.mixed4d = Mixed(*_MIXED["mixed4d"])
        self.mixed4e = Mixed(*_MIXED["mixed4e"])
        self.maxpool10 = MaxPoolSame(2)
        self.mixed5a = Mixed(*_MIXED["mixed5a"])
        self.mixed5b = Mixed(*_MIXED["mixed5b"])
        self.avgpool0 = nn.AdaptiveAvgPool2d(1)
        self.softmax2_pre_activation_matmul = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in STAGES:
            x = x.flatten(1) if name == "flatten" else getattr(self, name)(x)
        return x


STAGES = (
    "conv2d0", "maxpool0", "localresponsenorm0", "conv2d1", "conv2d2", "localresponsenorm1", "maxpool1",
    "mixed3a", "mixed3b", "maxpool4", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "maxpool10",
    "mixed5a", "mixed5b", "avgpool0", "flatten", "softmax2_pre_activation_matmul",
)

_PUBLISHED = re.compile(r"^(conv2d[0-2]|mixed[345][a-e])_(?:(" + "|".join(BRANCHES) + r")_)?pre_relu_conv\.(weight|bias)$")


def convert_state_dict(state: dict) -> dict:
    """The published port's flat names (``mixed4a_3x3_pre_relu_conv.weight``) as this module's
    (``mixed4a.conv_3x3.weight``); names that are already this module's pass unchanged."""
    out = {}
    for key, value in state.items():
        m = _PUBLISHED.match(key)
        if m is None:
            out[key] = value
        elif m.group(2) is None:
            out[f"{m.group(1)}.conv.{m.group(3)}"] = value
        else:
            out[f"{m.group(1)}.conv_{m.group(2)}.{m.group(3)}"] = value
    return out


def published_names(state: dict) -> dict:
    """The inverse of `convert_state_dict`: this module's state dict under the port's names."""
    out = {}
    for key, value in state.items():
        block, _, rest = key.partition(".")
        if block.startswith("conv2d") and rest.startswith("conv."):
            out[f"{block}_pre_relu_conv.{rest[len('conv.'):]}"] = value
        elif block in _MIXED and rest.startswith("conv_"):
            branch, _, param = rest[len("conv_"):].rpartition(".")
            out[f"{block}_{branch}_pre_relu_conv.{param}"] = value
        else:
            out[key] = value
    return out


# name, node, channels, stride, receptive field (px); checked against a forward pass in the tests
_TABLE = (
    ("conv2d0", 64, 2, 7),
    ("maxpool0", 64, 4, 11),
    ("conv2d1", 64, 4, 11),
    ("conv2d2", 192, 4, 19),
    ("maxpool1", 192, 8, 27),
    ("mixed3a", 256, 8, 59),
    ("mixed3b", 480, 8, 91),
    ("maxpool4", 480, 16, 107),
    ("mixed4a", 508, 16, 171),
    ("mixed4b", 512, 16, 235),
    ("mixed4c", 512, 16, 299),
    ("mixed4d", 528, 16, 363),
    ("mixed4e", 832, 16, 427),
    ("maxpool10", 832, 32, 459),
    ("mixed5a", 832, 32, 587),
    ("mixed5b", 1024, 32, 715),
)

INCEPTIONV1 = ModelSpec(
    name="inceptionv1",
    description="InceptionV1 of Lucid / TensorFlow DeepDream (inception5h, no BatchNorm), Lucid's layer names",
    build=InceptionV1,
    stages=STAGES,
    layers=tuple(LayerInfo(name, name, c, s, rf) for name, c, s, rf in _TABLE)
    + (
        LayerInfo(
            "logits", "softmax2_pre_activation_matmul", 1008, None, None,
            ("softmax2_pre_activation", "softmax2_pre_activation_matmul"),
        ),
    ),
    mean=(117 / 255, 117 / 255, 117 / 255),
    std=(1 / 255, 1 / 255, 1 / 255),
    min_size=32,
    weights_url=WEIGHTS_URL,
    fetch_pretrained=lambda progress: torch.hub.load_state_dict_from_url(
        WEIGHTS_URL, progress=progress, check_hash=False, map_location="cpu", weights_only=True
    ),
    categories=tuple(f"class {i}" for i in range(1008)),
    categories_note="Lucid's 1008 labels are not available offline: classes are named by index (class 0-1007)",
    default_layer="mixed4c",
    convert_state_dict=convert_state_dict,
    roles=(("shallow", "mixed3a"), ("lower", "mixed3b"), ("middle", "mixed4c"), ("upper", "mixed4d"), ("deep", "mixed5a")),
)
