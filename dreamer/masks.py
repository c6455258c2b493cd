"""Masks: dream only where a mask is white, leave the rest of the picture exactly as it was.

A mask is a (1,1,H,W) float32 tensor in [0,1]: 1 (white) dreams fully, 0 (black) keeps the
input, values between blend (soft edges). It is applied by compositing,
``out = input + mask * (dream - input)``, which leaves every pixel under 0 bit-identical to the
input. A mask file of another size than the image is scaled to the image's size (stretched
if its aspect ratio differs). Grey levels within 2/255 of black or white are snapped to 0 or 1,
so a mask saved as JPEG (whose blacks come back as 1, 2 or 3) still keeps its black exactly.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from .errors import UsageError

__all__ = ["SNAP", "as_mask", "load_mask", "fit_mask", "composite", "mask_aspect_differs"]

#: Grey levels within this of 0 or 1 are snapped to 0 or 1 (2 of 255: JPEG noise in flat areas).
SNAP = 2.0 / 255.0


def _snap(mask: torch.Tensor) -> torch.Tensor:
    mask = mask.clamp(0.0, 1.0)
    mask = torch.where(mask <= SNAP, torch.zeros_like(mask), mask)
    return torch.where(mask >= 1.0 - SNAP, torch.ones_like(mask), mask)


def as_mask(mask: torch.Tensor, *, source: str = "the mask") -> torch.Tensor:
    """A mask tensor from an image or grey tensor: (H,W), (1,H,W), (3,H,W), (1,1,H,W) or
    (1,3,H,W) in [0,1] -> (1,1,H,W) float32 in [0,1] on the same device, colour turned to its
    luma, levels near 0 and 1 snapped (`SNAP`).

    An all-black mask is a UsageError (exit 2): it would dream nothing and return the input.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"a mask must be a tensor, not {type(mask).__name__}")
    m = mask.detach().float()
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[None]
    if m.dim() != 4 or m.shape[0] != 1 or m.shape[1] not in (1, 3):
        raise ValueError(f"a mask must be (H,W), (1|3,H,W) or (1,1|3,H,W), got {tuple(mask.shape)}")
    if m.shape[1] == 3:
        from .colors import luminance

        m = luminance(m)
    m = _snap(torch.nan_to_num(m, nan=0.0))
    if not bool((m > 0).any()):
        raise UsageError(
            f"{source} is black everywhere: nothing would be dreamed",
            hint="white marks where to dream, black what to keep (grey blends)",
        )
    return m


def load_mask(path: str | os.PathLike, *, max_pixels: int | None = None) -> torch.Tensor:
    """A mask file (any image Pillow reads; colour is turned to luma, transparency flattened onto
    mid-grey) as a (1,1,H,W) float32 tensor in [0,1] on the CPU, at the file's own size.

    Errors as `dreamer.io.images.load_image` (a file that is not an image: ImageError, exit 1),
    and a UsageError for an all-black mask (`as_mask`)."""
    from .io.images import load_image

    return as_mask(load_image(path, max_pixels=max_pixels), source=f"mask {os.fspath(path)}")


def mask_aspect_differs(mask: torch.Tensor, size_hw: tuple[int, int], tolerance: float = 0.02) -> bool:
    """Whether scaling `mask` to `size_hw` stretches it by more than `tolerance` (2%)."""
    h, w = mask.shape[-2:]
    ratio = (w / h) / (size_hw[1] / size_hw[0])
    return abs(ratio - 1.0) > tolerance


def fit_mask(mask: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """`mask` (1,1,h,w) scaled to `size_hw` = (H, W): bilinear (antialiased when shrinking, so no
    ringing leaks into black areas), then snapped again so black stays exactly 0."""
    if tuple(mask.shape[-2:]) == tuple(size_hw):
        return mask
    shrinking = size_hw[0] < mask.shape[-2] or size_hw[1] < mask.shape[-1]
    out = F.interpolate(mask.float(), size=tuple(size_hw), mode="bilinear", align_corners=False, antialias=shrinking)
    return _snap(out)


def composite(result: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``original + mask * (result - original)``: (B,3,H,W) on result's device.

    `original` is (B or 1,3,H,W) at the result's size; `mask` (1 or B,1,h,w) is scaled to it
    (`fit_mask`). Where the mask is 0 the output equals `original` bit for bit."""
    if result.shape[-2:] != original.shape[-2:]:
        raise ValueError(f"result {tuple(result.shape)} and original {tuple(original.shape)} differ in size")
    original = original.to(device=result.device, dtype=result.dtype)
    m = fit_mask(mask, tuple(result.shape[-2:])).to(device=result.device, dtype=result.dtype)
    return original + m * (result - original)
