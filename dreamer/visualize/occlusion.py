"""Occlusion sensitivity (Zeiler & Fergus, 2014): slide a grey patch over the image and map how
much the probability of a class drops. Where hiding the image hurts most is what the network
relies on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .grid import blend, colormap
from .layers import as_batch, check_size, class_scores

__all__ = ["OcclusionResult", "patch_starts", "occlusion_map", "occlusion_overlay", "class_probabilities"]


@dataclass(frozen=True)
class OcclusionResult:
    """The outcome of `occlusion_map`.

    - `drop`: (gh, gw) float32 CPU, baseline probability minus the probability with the patch
      at each grid position (positive: the patch hurt the class).
    - `probability`: (gh, gw), the class probability with the patch at each position.
    - `heat`: (H, W), per pixel the mean `drop` of every patch position that covered it.
    - `baseline`: the class probability of the untouched image; `class_index` the class.
    - `ys`, `xs`: top and left pixel of the patch for each grid row and column.
    """

    drop: torch.Tensor
    probability: torch.Tensor
    heat: torch.Tensor
    baseline: float
    class_index: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    patch: int


def patch_starts(length: int, patch: int, stride: int) -> tuple[int, ...]:
    """First pixel of each patch along a side of `length`: 0, stride, 2*stride ... and a last one
    flush with the edge, so every pixel is covered. A patch longer than the side covers it once."""
    if patch < 1 or stride < 1:
        raise ConfigError("patch" if patch < 1 else "stride", patch if patch < 1 else stride, "an integer >= 1 (pixels)")
    last = max(0, length - patch)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return tuple(starts)


def class_probabilities(network, image: torch.Tensor) -> torch.Tensor:
    """Softmax class probabilities (classes,) of one (1,3,H,W) or (3,H,W) image, float32 CPU."""
    with torch.no_grad():
        return F.softmax(class_scores(network, as_batch(image)).float(), dim=1)[0].cpu()


def occlusion_map(
    network,
    image: torch.Tensor,
    class_index: int | None = None,
    *,
    patch: int = 32,
    stride: int = 8,
    fill: float = 0.5,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> OcclusionResult:
    """Occlude one image with a `patch` x `patch` square of grey `fill` every `stride` pixels.

    `image`: (3,H,W) or (1,3,H,W) RGB in [0,1], any device; `class_index`: the class to
    watch (default the one the network ranks first on the untouched image). Occluded copies
    are built on the network's device and run `batch_size` at a time; `progress(done, total)`
    is called after each batch. The result does not depend on `batch_size`.
    """
    image = as_batch(image)
    if image.shape[0] != 1:
        raise ValueError("occlusion_map takes one image")
    check_size(image, network)
    if batch_size < 1:
        raise ConfigError("batch_size", batch_size, "an integer >= 1")
    if not 0.0 <= fill <= 1.0:
        raise ConfigError("fill", fill, "a grey level in [0, 1]")
    device = network.device
    image = image.to(device, torch.float32)
    h, w = image.shape[-2:]
    ys, xs = patch_starts(h, patch, stride), patch_starts(w, patch, stride)
    base_probs = class_probabilities(network, image)
    if class_index is None:
        class_index = int(base_probs.argmax())
    if not 0 <= class_index < base_probs.numel():
        raise ConfigError("class", class_index, f"a class index 0-{base_probs.numel() - 1}")
    baseline = float(base_probs[class_index])

    grid_y = torch.tensor(ys, device=device).repeat_interleave(len(xs))
    grid_x = torch.tensor(xs, device=device).repeat(len(ys))
    total = grid_y.numel()
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    probs = torch.empty(total, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, total, batch_size):
            y0 = grid_y[start : start + batch_size].view(-1, 1)
            x0 = grid_x[start : start + batch_size].view(-1, 1)
            in_y = (rows >= y0) & (rows < y0 + patch)  # (b, H)
            in_x = (cols >= x0) & (cols < x0 + patch)  # (b, W)
            mask = (in_y[:, :, None] & in_x[:, None, :]).unsqueeze(1)  # (b, 1, H, W)
            batch = torch.where(mask, torch.full_like(image, fill), image)
            scores = class_scores(network, batch).float()
            probs[start : start + len(y0)] = F.softmax(scores, dim=1)[:, class_index].cpu()
            if progress is not None:
                progress(min(start + batch_size, total), total)

    probability = probs.view(len(ys), len(xs))
    drop = baseline - probability
    # per pixel: the mean drop of the patches that covered it
    heat = torch.zeros(h, w)
    count = torch.zeros(h, w)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            heat[y : y + patch, x : x + patch] += drop[i, j]
            count[y : y + patch, x : x + patch] += 1
    heat = heat / count.clamp_min(1)
    return OcclusionResult(drop, probability, heat, baseline, class_index, ys, xs, patch)


def occlusion_overlay(image: torch.Tensor, result: OcclusionResult, *, scale: float | None = None) -> torch.Tensor:
    """The heat map over the photo: (3,H,W) float32 CPU in [0,1].

    Red where the patch lowered the probability, blue where it raised it, the photo showing
    through where it changed nothing. Colours are scaled so that `scale` (default the
    largest |change|) is full strength.
    """
    photo = as_batch(image)[0].detach().float().cpu()
    heat = result.heat
    if scale is None:
        scale = float(heat.abs().max())
    scale = max(scale, 1e-12)
    signed = (heat / scale).clamp(-1, 1)
    colours = colormap(0.5 + 0.5 * signed, "diverging")
    alpha = (0.2 + 0.7 * signed.abs()).unsqueeze(0)
    return blend(photo, colours, alpha)
