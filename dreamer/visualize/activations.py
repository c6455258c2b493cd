"""Activation maps: what each channel of a layer responds to in one image, as a grid of maps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import UsageError
from .grid import blend, colormap, fit, make_grid
from .layers import as_batch, check_size, feature_maps, resolve_unit

__all__ = ["activation_maps", "strongest_channels", "activation_tiles", "activation_sheet", "tile_size"]


def activation_maps(network, image: torch.Tensor, layer: str) -> torch.Tensor:
    """The (C, h, w) float32 CPU activation maps of `layer` (e.g. ``mixed4c``) for one image.

    `image`: (3,H,W) or (1,3,H,W) RGB in [0,1]. Layers without a spatial map (logits) are a
    UsageError.
    """
    image = as_batch(image)
    if image.shape[0] != 1:
        raise ValueError("activation_maps takes one image")
    check_size(image, network)
    info, _ = resolve_unit(network, layer, channel="none", spatial=True, what="activations")
    maps = feature_maps(network, image, info.node)
    if maps.dim() != 4:
        raise UsageError(f"{info.name} gives {tuple(maps.shape[1:])} values per image, not feature maps")
    return maps[0].detach().float().cpu()


def strongest_channels(maps: torch.Tensor, k: int, *, by: str = "mean") -> torch.Tensor:
    """Indices (int64, strongest first) of the `k` channels of (C,h,w) `maps` with the highest
    mean (``by="mean"``) or peak (``by="max"``) activation; `k` is capped at C."""
    if by not in ("mean", "max"):
        raise ValueError(f"by must be 'mean' or 'max', not {by!r}")
    flat = maps.flatten(1)
    strength = flat.mean(1) if by == "mean" else flat.amax(1)
    k = max(1, min(int(k), maps.shape[0]))
    return torch.topk(strength, k).indices


def tile_size(image_hw: tuple[int, int], longest: int = 128) -> tuple[int, int]:
    """(h, w) of a tile with the image's aspect ratio and `longest` pixels on its longer side."""
    h, w = image_hw
    s = longest / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def activation_tiles(
    maps: torch.Tensor,
    channels: Sequence[int] | torch.Tensor,
    *,
    image: torch.Tensor | None = None,
    tile: tuple[int, int] | None = None,
    normalize: str = "map",
    overlay: bool = False,
) -> torch.Tensor:
    """(K, 3, th, tw) float32 tiles in [0,1], one coloured map per channel in `channels`.

    `normalize`: "map" scales each map to its own range (shows structure), "layer" uses one
    range for the whole layer (shows which channels are stronger). `overlay` lays the maps
    (smoothly upsampled) over a greyed `image` (3,H,W) or (1,3,H,W); otherwise maps are shown
    blocky (nearest neighbour), one block per unit. `tile` defaults to 128 px on the longer
    side with the image's (or the map's) aspect ratio.
    """
    if normalize == "tile":  # the earlier name of "map"
        normalize = "map"
    if normalize not in ("map", "layer"):
        raise ValueError(f"normalize must be 'map' or 'layer', not {normalize!r}")
    idx = torch.as_tensor(list(channels) if not isinstance(channels, torch.Tensor) else channels, dtype=torch.long)
    maps = maps.detach().float().cpu()
    chosen = maps.index_select(0, idx)  # (K, h, w)
    if normalize == "layer":
        low, high = maps.amin(), maps.amax()
        low, high = low.expand(len(idx)), high.expand(len(idx))
    else:
        low, high = chosen.flatten(1).amin(1), chosen.flatten(1).amax(1)
    # activations after ReLU start at 0: keep 0 as the floor so a weak map stays dark
    low = torch.minimum(low, torch.zeros_like(low))
    span = (high - low).clamp_min(1e-12)
    values = ((chosen - low.view(-1, 1, 1)) / span.view(-1, 1, 1)).clamp(0, 1)
    photo = as_batch(image).cpu() if image is not None else None
    if tile is None:
        tile = tile_size(tuple(photo.shape[-2:]) if photo is not None else tuple(maps.shape[-2:]))
    if overlay:
        if photo is None:
            raise ValueError("overlay needs the image")
        size = tuple(photo.shape[-2:])
        smooth = F.interpolate(values.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
        colours = colormap(smooth).movedim(0, 1)  # (K, 3, H, W)
        alpha = (0.15 + 0.75 * smooth).unsqueeze(1)
        shown = blend(photo.expand(len(idx), -1, -1, -1), colours, alpha)
        return fit(shown, tile, mode="bilinear")
    colours = colormap(values).movedim(0, 1)  # (K, 3, h, w)
    if photo is not None:
        # stretch the map over the image's frame, so tiles line up with the photo
        colours = F.interpolate(colours, size=tuple(photo.shape[-2:]), mode="nearest")
    return fit(colours, tile, mode="nearest")


def activation_sheet(
    network,
    image: torch.Tensor,
    layer: str,
    *,
    top: int = 16,
    channels: Sequence[int] | None = None,
    by: str = "mean",
    normalize: str = "map",
    overlay: bool = False,
    tile: int = 128,
    columns: int | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """A labelled contact sheet of `layer`'s activation maps for one image.

    Shows the `top` strongest channels (strongest first) or the given `channels`. Returns
    the (3,H,W) float32 CPU sheet in [0,1] and the channel numbers shown, in order.
    """
    maps = activation_maps(network, image, layer)
    if channels is None:
        chosen = strongest_channels(maps, top, by=by).tolist()
    else:
        chosen = [int(c) for c in channels]
        bad = [c for c in chosen if not 0 <= c < maps.shape[0]]
        if bad:
            from ..errors import ConfigError

            raise ConfigError("channel", bad[0], f"{layer} has channels 0-{maps.shape[0] - 1}")
    photo = as_batch(image)
    size = tile_size(tuple(photo.shape[-2:]), tile)
    tiles = activation_tiles(maps, chosen, image=photo, tile=size, normalize=normalize, overlay=overlay)
    flat = maps.flatten(1)
    strength = flat.mean(1) if by == "mean" else flat.amax(1)
    labels = [f"{c}  {strength[c].item():.3g}" for c in chosen]
    info = network.resolve(layer)
    title = f"{info.name}: {len(chosen)} of {maps.shape[0]} channels, {by} activation ({maps.shape[-1]}x{maps.shape[-2]} maps)"
    return make_grid(tiles, labels=labels, columns=columns, title=title), chosen
