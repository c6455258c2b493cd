"""Colour spaces for keeping a photo's colours: luminance from the dream, chroma from the photo.

Why YCbCr (full-range BT.601, JPEG's): it is a linear transform of RGB, so the round trip is
exact and a dream's luminance can be put under the photo's chroma with three multiply-adds per
pixel on any device. The dream's structure lives almost entirely in luminance; the colours the
network paints in (the famous purples and greens) live in chroma, which is what we take back
from the photo. CIELAB would be more perceptually uniform but needs the sRGB gamma and a cube
root both ways for a result that, at DeepDream's contrast, looks the same; YIQ/YUV differ from
YCbCr only by a rotation and scaling of the chroma plane. Pure functions: tensors in, tensors out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "luminance", "keep_colors"]

# full-range BT.601 (JFIF): Y in [0,1], Cb and Cr centred on 0 (in [-0.5, 0.5])
_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)
_TO_RGB = (
    (1.0, 0.0, 1.402),
    (1.0, -0.344136286, -0.714136286),
    (1.0, 1.772, 0.0),
)


def _apply(matrix: tuple, x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(matrix, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", m, x)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) RGB in [0,1] -> (B,3,H,W) Y in [0,1], Cb and Cr in [-0.5,0.5] (same device)."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected (B,3,H,W) RGB, got {tuple(rgb.shape)}")
    return _apply(_TO_YCBCR, rgb.float())


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_ycbcr` (not clamped: out-of-gamut colours come out below 0 or above 1)."""
    if ycc.dim() != 4 or ycc.shape[1] != 3:
        raise ValueError(f"expected (B,3,H,W) YCbCr, got {tuple(ycc.shape)}")
    return _apply(_TO_RGB, ycc.float())


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) luma Y of (B,3,H,W) RGB in [0,1]."""
    return rgb_to_ycbcr(rgb)[:, :1]


def keep_colors(result: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """`result`'s luminance with `original`'s chroma, as (B,3,H,W) RGB in [0,1] on result's device.

    `original` is (B,3,h,w) or (1,3,h,w) RGB in [0,1]; a different size is resized (bilinear) to
    the result's. Colours that fall outside RGB (a bright dream under a saturated photo) are
    clamped, so the chroma matches closely but not always exactly.
    """
    if result.dim() != 4 or result.shape[1] != 3:
        raise ValueError(f"expected (B,3,H,W) RGB, got {tuple(result.shape)}")
    original = original.to(device=result.device, dtype=torch.float32)
    if original.dim() != 4 or original.shape[1] != 3 or original.shape[0] not in (1, result.shape[0]):
        raise ValueError(f"original must be (1 or {result.shape[0]},3,h,w), got {tuple(original.shape)}")
    if original.shape[-2:] != result.shape[-2:]:
        original = F.interpolate(original, size=tuple(result.shape[-2:]), mode="bilinear", align_corners=False)
    y = rgb_to_ycbcr(result)[:, :1]
    chroma = rgb_to_ycbcr(original)[:, 1:].expand(result.shape[0], -1, -1, -1)
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp(0.0, 1.0)
