"""Small building blocks shared by the networks ported from TensorFlow."""

from __future__ import annotations

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["same_pad", "SamePad"]


@torch.fx.wrap  # traced as one call (its padding depends on the input's size)
def same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad (B,C,H,W) `x` as TensorFlow's ``SAME`` padding does before a `kernel`/`stride`
    convolution or pooling: the output has ceil(H / stride) rows, and when the padding is
    odd the extra row/column goes at the bottom/right (PyTorch's symmetric padding would
    shift the sampling grid by a pixel against the weights trained in TensorFlow)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class SamePad(nn.Module):
    """`same_pad` as a module (no parameters); `value` is -inf before a max pooling."""

    def __init__(self, kernel: int, stride: int, value: float = 0.0) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return same_pad(x, self.kernel, self.stride, self.value)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, value={self.value}"
