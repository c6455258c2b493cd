"""Filters: the weights of a convolution drawn as pictures.

The first layer's filters see RGB directly, so each is a small colour image. A deeper
convolution's filter sees many input channels, so it is shown one input channel at a time
(a signed map per channel), for one filter chosen by the user.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import parse_layer_target
from ..errors import ConfigError, UnknownNameError, UsageError
from .grid import colormap, make_grid

__all__ = ["find_conv", "filter_tiles", "filters_sheet"]


def _first_conv(module: nn.Module) -> str:
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            return name
    raise UsageError("this network has no 2-D convolution, so it has no filters to show")


def find_conv(network, layer: str | None = None) -> tuple[str, str, nn.Conv2d]:
    """(shown name, module path, the Conv2d) of the convolution called `layer`.

    `layer`: a layer name or alias (``conv1``), or a module path (``inception4c.branch2.1``);
    default the network's first convolution. A block holding several convolutions (such as an
    Inception module) is refused with the paths of the convolutions inside it.
    """
    modules = dict(network.module.named_modules())
    if layer is None:
        if network.spec is not None and network.spec.layers:
            layer = network.spec.layers[0].name
        else:
            layer = _first_conv(network.module)
    try:
        info = network.resolve(layer)
        name, node = info.name, info.node
    except UnknownNameError:
        if layer not in modules or not layer:
            raise
        name = node = layer
    module = modules.get(node)
    if module is None:
        raise UsageError(f"{name} is not a module of the network, so it has no filters")
    if isinstance(module, nn.Conv2d):
        return name, node, module
    convs = [(f"{node}.{n}", m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if len(convs) == 1:
        return name, convs[0][0], convs[0][1]
    if not convs:
        raise UsageError(
            f"{name} has no convolution of its own (it is a {type(module).__name__}), so it has no filters",
            hint="try conv1, conv2 or conv3",
        )
    others = ", ".join(p for p, _ in convs[1:4]) + (", ..." if len(convs) > 4 else "")
    raise UsageError(
        f"{name} is a block of {len(convs)} convolutions; filters are shown for one convolution at a time",
        hint=f"name one by its module path, e.g. --layer {convs[0][0]} (or {others})",
    )


def _upscale(tiles: torch.Tensor, tile: int) -> torch.Tensor:
    k = max(tiles.shape[-2:])
    factor = max(1, tile // k)
    return F.interpolate(tiles, scale_factor=factor, mode="nearest") if factor > 1 else tiles


def filter_tiles(
    weight: torch.Tensor, *, channel: int | None = None, tile: int = 56, normalize: str = "filter"
) -> torch.Tensor:
    """Tiles (N, 3, t, t) in [0,1] for a convolution weight (out, in, kh, kw).

    Without `channel`: one colour tile per filter; needs in == 3 (the first layer). Zero is
    mid-grey; each filter is scaled by its own largest |weight| (``normalize="filter"``) or
    all by the layer's (``"layer"``). With `channel`: the `in` input-channel slices of that
    one filter, blue (negative) - white - red (positive), scaled by the filter's largest |weight|.
    Tiles are enlarged by whole factors (nearest neighbour) to about `tile` pixels.
    """
    if weight.dim() != 4:
        raise ValueError(f"expected a conv weight (out, in, kh, kw), got {tuple(weight.shape)}")
    if normalize not in ("filter", "layer"):
        raise ValueError(f"normalize must be 'filter' or 'layer', not {normalize!r}")
    w = weight.detach().float().cpu()
    out_ch, in_ch = w.shape[:2]
    if channel is None:
        if in_ch != 3:
            raise UsageError(
                f"these filters see {in_ch} input channels, not RGB, so they are not colour images",
                hint="pick one filter with --layer NAME:N to see it one input channel at a time",
            )
        if normalize == "layer":
            scale = w.abs().amax().clamp_min(1e-12).expand(out_ch)
        else:
            scale = w.flatten(1).abs().amax(1).clamp_min(1e-12)
        tiles = 0.5 + 0.5 * w / scale.view(-1, 1, 1, 1)
        return _upscale(tiles.clamp(0, 1), tile)
    if not 0 <= channel < out_ch:
        raise ConfigError("channel", channel, f"this convolution has filters 0-{out_ch - 1}")
    f = w[channel]  # (in, kh, kw)
    values = 0.5 + 0.5 * f / f.abs().amax().clamp_min(1e-12)
    tiles = colormap(values, "diverging").movedim(0, 1)  # (in, 3, kh, kw)
    return _upscale(tiles, tile)


def filters_sheet(
    network,
    layer: str | None = None,
    *,
    tile: int = 56,
    normalize: str = "filter",
    columns: int | None = None,
) -> tuple[torch.Tensor, dict]:
    """A labelled sheet of a convolution's filters: (3,H,W) float32 CPU in [0,1], and facts.

    `layer` may carry one channel (``conv3:5``) to show that filter per input channel; without
    one, only a convolution on RGB input (conv1) can be drawn. The facts dict holds ``name``,
    ``node``, ``shape`` (out, in, kh, kw) and ``channel``.
    """
    channel = None
    if layer is not None:
        target = parse_layer_target(layer)
        if target.channels is not None:
            if len(target.channels) != 1:
                raise UsageError(f"filters takes one filter number, not {len(target.channels)} ({layer})")
            channel = target.channels[0]
        layer = target.layer
    name, node, conv = find_conv(network, layer)
    weight = conv.weight
    if conv.groups != 1 and channel is None and weight.shape[1] != 3:
        raise UsageError(f"{name} is a grouped convolution ({conv.groups} groups); pick one filter with {name}:N")
    if channel is not None and channel >= weight.shape[0]:
        raise ConfigError("channel", channel, f"{name} has filters 0-{weight.shape[0] - 1}")
    try:
        tiles = filter_tiles(weight, channel=channel, tile=tile, normalize=normalize)
    except UsageError as exc:
        raise UsageError(
            f"{name} ({node}) has {weight.shape[1]} input channels, so its filters are not colour images",
            hint=f"pick one filter with --layer {name}:N (0-{weight.shape[0] - 1}) to see it per input channel",
        ) from exc
    kh, kw = weight.shape[-2:]
    if channel is None:
        labels = [str(i) for i in range(weight.shape[0])]
        title = f"{name}: {weight.shape[0]} filters, {kw}x{kh}, RGB (grey = 0)"
    else:
        labels = [f"in {i}" for i in range(weight.shape[1])]
        title = f"{name} filter {channel}: {weight.shape[1]} input channels, {kw}x{kh} (blue < 0 < red)"
    facts = {"name": name, "node": node, "shape": tuple(weight.shape), "channel": channel}
    return make_grid(tiles, labels=labels, columns=columns, title=title), facts
