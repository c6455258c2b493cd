"""How good a picture is, measured: what a network sees in it under random views, and how
strong its colours are.

A class render scored ~1.0 by the network that made it says little: the render was optimised
for exactly that. `robust_p` asks more: the probability of the class *averaged over random
views* - crops anywhere of 60-100 % of the area, rotations, mirroring and blur - so an image
that only works pixel-exact scores low, and a *held-out* network (one the render never saw,
e.g. efficientnet-lite1 for a render made on efficientnet-lite0) tells a picture of the object
from an adversarial pattern for one network. `colorfulness` and `contrast` put numbers on how
burnt-out an image looks.

Every view is drawn from a seed, so a score is reproducible, and every image of a batch sees
the same draws, so images are compared on equal terms. docs/quality.md has the measured tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import transforms as T
from .backend.forward import fast_forward

__all__ = [
    "VIEW_AREA",
    "VIEW_RATIO",
    "VIEW_ANGLE",
    "VIEW_BLUR",
    "random_views",
    "class_probabilities",
    "robust_p",
    "colorfulness",
    "contrast",
    "saturated_fraction",
]

#: Area of a view's crop, as a fraction of the image's area (uniform in this range).
VIEW_AREA = (0.6, 1.0)
#: Aspect ratio (width / height) of a view's crop, log-uniform in this range.
VIEW_RATIO = (3 / 4, 4 / 3)
#: Largest rotation of a view, degrees either way (uniform).
VIEW_ANGLE = 15.0
#: Largest Gaussian blur of a view, sigma in pixels of the network's input (uniform from 0).
VIEW_BLUR = 1.5


def random_views(image: torch.Tensor, count: int, generator: torch.Generator, size: int) -> torch.Tensor:
    """`count` random views of one image, (count,3,size,size) in [0,1], on `image`'s device.

    `image`: (3,H,W) RGB in [0,1]. One view: a crop of `VIEW_AREA` of the area with aspect
    `VIEW_RATIO`, anywhere in the image, antialiased to `size` x `size`, rotated by up to
    `VIEW_ANGLE` degrees (edges reflected), mirrored with probability 1/2, blurred with a sigma
    up to `VIEW_BLUR`. Every number comes from `generator`.
    """
    _, h, w = image.shape
    views = []
    for _ in range(count):
        u = torch.rand(7, generator=generator, dtype=torch.float64).tolist()
        area = (VIEW_AREA[0] + (VIEW_AREA[1] - VIEW_AREA[0]) * u[0]) * h * w
        ratio = math.exp(math.log(VIEW_RATIO[0]) + math.log(VIEW_RATIO[1] / VIEW_RATIO[0]) * u[1])
        ch = max(1, min(h, round(math.sqrt(area / ratio))))
        cw = max(1, min(w, round(math.sqrt(area * ratio))))
        top, left = int((h - ch) * u[2]), int((w - cw) * u[3])
        crop = image[None, :, top : top + ch, left : left + cw].float()
        crop = T.resize(crop, (size, size))
        crop = T.affine(crop, angle_deg=VIEW_ANGLE * (2 * u[4] - 1))
        if u[5] < 0.5:
            crop = crop.flip(-1)
        views.append(T.gaussian_blur(crop, VIEW_BLUR * u[6]))
    return torch.cat(views).clamp(0.0, 1.0)


def _logits_fn(network):
    """RGB [0,1] (N,3,S,S) -> (N, classes) logits, for a dreamer Network or any callable.

    A Network runs through the backend's fast fp32 forward pass (BatchNorm folded,
    channels_last): the same logits to float rounding, about twice as fast on a CPU."""
    if hasattr(network, "extractor") and hasattr(network, "resolve"):
        node = network.resolve("logits").node
        forward = fast_forward(network, [node], "fp32")
        return lambda x: forward(x)[node]
    return network


def _input_size(network, size: int | None) -> int:
    if size is not None:
        return size
    spec = getattr(network, "spec", None)
    return int(spec.input_size) if spec is not None else 224


@torch.no_grad()
def class_probabilities(network, images: torch.Tensor, classes: Sequence[int], *, size: int | None = None) -> torch.Tensor:
    """(B,) softmax probability of `classes[i]` for the whole of `images[i]`, resized once to
    the network's input size (the "exact" score: no random views)."""
    logits = _logits_fn(network)
    side = _input_size(network, size)
    device = _device(network, images)
    x = T.resize(images.float().to(device), (side, side)).clamp(0.0, 1.0)
    probs = logits(x).float().softmax(1)
    return probs[torch.arange(len(classes)), torch.as_tensor(list(classes))].cpu()


def _device(network, images: torch.Tensor) -> torch.device:
    return getattr(network, "device", images.device)


@torch.no_grad()
def robust_p(
    network,
    images: torch.Tensor,
    classes: Sequence[int],
    *,
    views: int = 32,
    seed: int = 0,
    size: int | None = None,
    chunk: int = 16,
) -> torch.Tensor:
    """(B,) the softmax probability of class `classes[i]` for `images[i]`, averaged over `views`
    random views (`random_views`).

    `network`: a dreamer Network (its ``logits`` layer is read) or any callable mapping RGB
    [0,1] (N,3,S,S) to (N, classes) logits; `images`: (B,3,H,W) in [0,1]; `size`: the side of
    the views (default: the model's input size, 224 without a spec). Every image sees the same
    seeded draws. Runs `chunk` views at a time; returns a CPU tensor.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B,3,H,W), got {tuple(images.shape)}")
    if len(classes) != images.shape[0]:
        raise ValueError(f"{len(classes)} classes for {images.shape[0]} images")
    logits = _logits_fn(network)
    side = _input_size(network, size)
    device = _device(network, images)
    out = []
    for image, index in zip(images, classes):
        g = torch.Generator().manual_seed(seed)
        batch = random_views(image.to(device), views, g, side)
        probs = torch.cat([logits(batch[i : i + chunk]).float().softmax(1)[:, int(index)] for i in range(0, views, chunk)])
        out.append(probs.mean().cpu())
    return torch.stack(out)


def colorfulness(images: torch.Tensor) -> torch.Tensor:
    """(B,) Hasler & Süsstrunk's colourfulness of RGB [0,1] images (B,3,H,W), on the 0-255
    scale: about 0-15 for nearly grey pictures, 30-60 for ordinary photos, 100+ for saturated
    primaries everywhere."""
    x = images.float() * 255.0
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    std = torch.sqrt(rg.std(1) ** 2 + yb.std(1) ** 2)
    mean = torch.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    return std + 0.3 * mean


def contrast(images: torch.Tensor) -> torch.Tensor:
    """(B,) RMS contrast: the standard deviation of the luminance (Rec. 601) of RGB [0,1]
    images, in [0, 0.5]."""
    x = images.float()
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    return luma.flatten(1).std(1)


def saturated_fraction(images: torch.Tensor, margin: float = 0.02) -> torch.Tensor:
    """(B,) fraction of the values of RGB [0,1] images within `margin` of 0 or 1: how much of a
    picture is burnt to pure black, white or primaries."""
    x = images.float()
    return ((x <= margin) | (x >= 1.0 - margin)).flatten(1).float().mean(1)
