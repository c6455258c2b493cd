"""Shared steps of the visualisations: naming a unit, checking inputs, reading feature maps."""

from __future__ import annotations

import torch

from ..config import LayerTarget, parse_layer_target
from ..errors import ConfigError, ImageError, UsageError
from ..models import LayerInfo
from ..targets import check_channels

__all__ = ["resolve_layer", "resolve_unit", "as_batch", "check_size", "feature_maps", "class_scores", "slug"]


def resolve_layer(network, layer: str) -> LayerInfo:
    """`network.resolve(layer)`: `network` may be a loaded `Network` or a registry `ModelSpec`
    (so names can be checked before any weights are loaded)."""
    return network.resolve(layer)


def resolve_unit(
    network,
    layer: str | LayerTarget,
    *,
    channel: str = "optional",
    spatial: bool = False,
    what: str = "this view",
) -> tuple[LayerInfo, int | None]:
    """The layer and (at most one) channel named by ``mixed4c`` or ``mixed4c:97``.

    `network` may also be a registry `ModelSpec` (checks before loading weights).
    `channel`: "required", "optional" or "none" (a channel is refused). `spatial`: refuse
    layers known to have no feature map (e.g. logits). Unknown names raise UnknownNameError
    with suggestions; channels out of range a ConfigError (exit code 2).
    """
    target = parse_layer_target(layer) if isinstance(layer, str) else layer
    info = resolve_layer(network, target.layer)
    if spatial and info.channels is not None and info.stride is None:
        raise UsageError(
            f"{info.name} has no spatial maps (it is a vector of {info.channels} values), "
            f"so {what} cannot show it",
            hint="pick a convolutional layer such as mixed4c; see `dreamer layers`",
        )
    chans = target.channels
    if chans is None:
        if channel == "required":
            raise UsageError(
                f"{what} needs one channel of {info.name}",
                hint=f"name it as {info.name}:N, e.g. {info.name}:{min(97, (info.channels or 98) - 1)}",
            )
        return info, None
    if channel == "none":
        raise UsageError(f"{what} shows a whole layer; drop the channel in {target}")
    if len(chans) != 1:
        raise UsageError(f"{what} takes one channel, not {len(chans)} ({target})", hint=f"e.g. {info.name}:{chans[0]}")
    c = chans[0]
    check_channels(info, [c])
    return info, c


def as_batch(image: torch.Tensor) -> torch.Tensor:
    """A (3,H,W) or (1,3,H,W) image as (1,3,H,W) float32; anything else is a ValueError."""
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an image (3,H,W) or (B,3,H,W), got {tuple(image.shape)}")
    return image.float()


def check_size(image: torch.Tensor, network) -> None:
    """ImageError when the image is smaller than the network's minimum side."""
    h, w = image.shape[-2:]
    if min(h, w) < network.min_size:
        raise ImageError(
            f"the image is {w}x{h} pixels; the network needs at least {network.min_size} pixels per side",
            hint="use a larger image, or --size to scale it up",
        )


def feature_maps(network, images: torch.Tensor, node: str, extractor=None) -> torch.Tensor:
    """Activations of `node` for (B,3,H,W) images in [0,1] (no gradient), on the network's device."""
    extractor = extractor if extractor is not None else network.extractor([node])
    with torch.no_grad():
        return extractor(images.to(network.device, torch.float32))[node]


def class_scores(network, images: torch.Tensor) -> torch.Tensor:
    """Class logits (B, classes) of (B,3,H,W) images in [0,1]; gradients flow if the input wants them."""
    images = images.to(network.device, torch.float32)
    if network.spec is not None:
        node = network.resolve("logits").node
        return network.extractor([node])(images)[node]
    out = network.module(network.normalize(images))
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.dim() != 2:
        raise ConfigError("model", network.name, "a classifier whose output is (batch, classes)")
    return out


def slug(text: str) -> str:
    """A file-name-safe form of a layer spec or class name: ``mixed4c:97`` -> ``mixed4c_97``."""
    out = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text.strip().lower())
    return out.strip("_.") or "x"
