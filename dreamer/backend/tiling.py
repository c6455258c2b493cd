"""Tiled gradients, so that images of any size dream within a fixed memory budget.

The image is cut into tiles whose *cores* partition it; each tile is run through the network
with a *halo* (overlap) of half the layer's receptive field plus one stride on every side, so
each activation a tile owns sees exactly the pixels it would see in the whole image. Tile
origins sit on multiples of the layer's stride, so every tile's activation grid lines up with
the whole image's. Each term of the objective is evaluated on the activations a tile owns,
weighted by owned positions / all positions of its node, and the input gradients of all tiles
are summed (halos overlap). The result is the whole image's gradient and objective, equal to
the untiled ones up to float summation order.

That holds only for objectives that are means over positions (`Objective.tileable`: layer_l2,
channel and weighted sums of them). Anything else - a maximum, the square of a mean, a class
logit, a custom function - has no layout here and is never tiled. Layers without a known stride
and receptive field (custom networks) are not tiled either.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from ..objectives import Objective
from .forward import Forward

__all__ = [
    "Tile",
    "TileLayout",
    "plan_tiles",
    "layout_for",
    "untileable_reason",
    "memory_budget",
    "estimate_bytes",
    "probe_bytes_per_pixel",
    "choose_core",
    "smaller_core",
    "Tiler",
    "DEFAULT_BUDGET",
]

#: working memory (bytes) one gradient may use on an accelerator before it is tiled
DEFAULT_BUDGET = 3 * 2**30
#: stored activations -> peak working memory of forward + backward (measured ~2.7-3.0 on CPU)
_WORKING_FACTOR = 3.0
#: fp32 full-size images the gradient holds besides the network (input, gradient, copies)
_IMAGE_BYTES_PER_PIXEL = 4 * 3 * 4


@dataclass(frozen=True)
class Tile:
    """`core` (y0, y1, x0, x1): the pixels whose activations this tile owns (cores partition
    the image); `box`: the pixels it reads (core plus halo, clipped to the image)."""

    core: tuple[int, int, int, int]
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class TileLayout:
    """What tiling needs to know about the objective's layers: `strides` per node, `stride`
    the largest (tile origins are multiples of it), `halo` in pixels (a multiple of `stride`)."""

    strides: dict[str, int]
    stride: int
    halo: int
    receptive_field: int

    @property
    def min_core(self) -> int:
        return 2 * self.stride


def untileable_reason(network, objective: Objective) -> str | None:
    """Why `objective` cannot be tiled on `network` (None if it can)."""
    if not objective.tileable:
        return f"{objective.name} is not a mean over positions"
    layers = {info.node: info for info in network.layers()}
    for node in objective.nodes:
        info = layers.get(node)
        if info is None or info.stride is None or info.receptive_field is None:
            return f"the stride and receptive field of {node} are not known"
    strides = [layers[n].stride for n in objective.nodes]
    if any(max(strides) % s for s in strides):
        return "its layers' strides do not divide each other"
    return None


def layout_for(network, objective: Objective) -> TileLayout | None:
    """The tiling layout of `objective` on `network`, or None if it cannot be tiled exactly
    (see `untileable_reason`)."""
    if untileable_reason(network, objective) is not None:
        return None
    layers = {info.node: info for info in network.layers()}
    strides = {node: layers[node].stride for node in objective.nodes}
    stride = max(strides.values())
    rf = max(layers[node].receptive_field for node in objective.nodes)
    halo = math.ceil((rf / 2 + stride) / stride) * stride
    return TileLayout(strides, stride, halo, rf)


def _cuts(length: int, core: int, stride: int) -> list[int]:
    n = max(1, math.ceil(length / core))
    cuts = [0]
    for i in range(1, n):
        c = round(i * length / n / stride) * stride
        if cuts[-1] < c < length:
            cuts.append(c)
    cuts.append(length)
    return cuts


def plan_tiles(size_hw: tuple[int, int], core: int, halo: int, stride: int) -> list[Tile]:
    """Tiles covering an image of `size_hw`: cores of at most about `core` pixels a side with
    edges on multiples of `stride`, boxes extended by `halo` on each side (clipped)."""
    h, w = size_hw
    ys, xs = _cuts(h, core, stride), _cuts(w, core, stride)
    tiles = []
    for y0, y1 in zip(ys, ys[1:]):
        for x0, x1 in zip(xs, xs[1:]):
            box = (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))
            tiles.append(Tile((y0, y1, x0, x1), box))
    return tiles


def memory_budget(device: torch.device) -> int:
    """Bytes one gradient may use on `device`: on CUDA the smaller of `DEFAULT_BUDGET` and 80% of
    free memory (counting what torch has cached); on the CPU the smaller of half the RAM and 80%
    of what is available."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(min(DEFAULT_BUDGET, 0.8 * free))
    if device.type == "cpu":
        info = _meminfo()
        if info:
            return int(min(0.5 * info.get("MemTotal", 0), 0.8 * info.get("MemAvailable", info.get("MemTotal", 0))))
        return 8 * 2**30
    return DEFAULT_BUDGET


def _meminfo() -> dict[str, int]:
    try:
        with open("/proc/meminfo") as f:
            out = {}
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[name] = int(parts[0]) * 1024
            return out
    except OSError:
        return {}


@torch.no_grad()
def probe_bytes_per_pixel(forward: Forward, size: int = 96) -> float:
    """Bytes of distinct activation storage per input pixel (one image) of `forward`, from a
    no-grad forward on a `size`x`size` probe. Kept on `forward` after the first call."""
    if forward.bytes_per_pixel is not None:
        return forward.bytes_per_pixel
    storages: dict[int, int] = {}

    def hook(module, _inp, output) -> None:
        outs = output.values() if isinstance(output, dict) else (output,)
        for t in outs:
            if isinstance(t, torch.Tensor) and not isinstance(module, torch.nn.Identity):
                s = t.untyped_storage()
                storages[s.data_ptr()] = s.nbytes()

    handles = [m.register_forward_hook(hook) for m in forward.extractor.modules()]
    try:
        forward(torch.zeros(1, 3, size, size, device=forward.device))
    finally:
        for h in handles:
            h.remove()
    forward.bytes_per_pixel = max(1.0, sum(storages.values()) / (size * size))
    return forward.bytes_per_pixel


def estimate_bytes(bytes_per_pixel: float, batch: int, size_hw: tuple[int, int]) -> int:
    """Estimated peak working memory of one gradient of a (batch,3,H,W) input."""
    pixels = batch * size_hw[0] * size_hw[1]
    return int(pixels * (_WORKING_FACTOR * bytes_per_pixel + _IMAGE_BYTES_PER_PIXEL))


def choose_core(
    shape: tuple[int, ...], layout: TileLayout, *, tile: int | None, budget: int, bytes_per_pixel: float
) -> int | None:
    """The tile core size for a (B,3,H,W) input, or None to run the whole image at once:
    `tile` rounded to the stride if given, else the largest core whose tiles fit `budget`."""
    b, _, h, w = shape
    s = layout.stride
    if tile is not None:
        core = max(layout.min_core, tile // s * s)
        return None if core >= max(h, w) else core
    if estimate_bytes(bytes_per_pixel, b, (h, w)) <= budget:
        return None
    side = math.sqrt(budget / (b * (_WORKING_FACTOR * bytes_per_pixel + _IMAGE_BYTES_PER_PIXEL)))
    core = max(layout.min_core, int(side - 2 * layout.halo) // s * s)
    return None if core >= max(h, w) else core


def smaller_core(core: int | None, size_hw: tuple[int, int], layout: TileLayout) -> int | None:
    """Half of `core` (of the whole image for None), on the stride; None when below the minimum."""
    current = max(size_hw) if core is None else core
    smaller = (current // 2) // layout.stride * layout.stride
    return smaller if smaller >= layout.min_core else None


class Tiler:
    """Computes the gradient of a tileable objective through `forward` tile by tile.

    Same contract as a whole-image gradient: (B,3,H,W) fp32 -> (gradient (B,3,H,W) fp32,
    objective (B,) fp32), both detached.
    """

    def __init__(self, forward: Forward, layout: TileLayout) -> None:
        self.forward = forward
        self.layout = layout
        #: how many tiles the last call used
        self.last_tiles = 0
        self._meta: torch.nn.Module | None = None
        self._sizes: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}

    def output_sizes(self, size_hw: tuple[int, int]) -> dict[str, tuple[int, int]]:
        """Each node's activation (height, width) for the whole image, from a shape-only
        (meta device) forward: no memory, no arithmetic."""
        if size_hw not in self._sizes:
            if self._meta is None:
                self._meta = copy.deepcopy(self.forward.extractor).to("meta")
            with torch.no_grad():
                acts = self._meta(torch.empty(1, 3, *size_hw, device="meta"))
            self._sizes[size_hw] = {n: tuple(acts[n].shape[-2:]) for n in self.layout.strides}
        return self._sizes[size_hw]

    def gradient(self, x: torch.Tensor, objective: Objective, core: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not objective.tileable:
            raise ValueError(f"{objective.name} cannot be tiled: it is not a mean over positions")
        b, _, h, w = x.shape
        image = x.detach()
        full = self.output_sizes((h, w))
        tiles = plan_tiles((h, w), core, self.layout.halo, self.layout.stride)
        self.last_tiles = len(tiles)
        terms = [(weight, leaf, leaf.nodes[0]) for weight, leaf in objective.terms]
        grad = torch.zeros_like(image, memory_format=torch.contiguous_format)
        score = torch.zeros(b, dtype=torch.float32, device=x.device)
        scale = self.forward.loss_scale  # fp16: the same constant as the untiled path
        with self.forward.context():
            for tile in tiles:
                ty0, ty1, tx0, tx1 = tile.box
                piece = image[:, :, ty0:ty1, tx0:tx1].contiguous().requires_grad_(True)
                owned = self._owned(self.forward(piece), tile, full, (h, w))
                part = None
                for weight, leaf, node in terms:
                    crop, share = owned[node]
                    if share > 0:
                        term = (weight * share) * leaf({node: crop}).float()
                        part = term if part is None else part + term
                if part is None:
                    continue
                (g,) = torch.autograd.grad(part.sum() * scale if scale != 1.0 else part.sum(), piece)
                grad[:, :, ty0:ty1, tx0:tx1] += g / scale if scale != 1.0 else g
                score += part.detach()
                del g, part, piece, owned
        if objective.offset:
            score += objective.offset
        return grad, score

    def _owned(
        self, acts: dict[str, torch.Tensor], tile: Tile, full: dict[str, tuple[int, int]], size_hw: tuple[int, int]
    ) -> dict[str, tuple[torch.Tensor, float]]:
        """node -> (the activations this tile owns, their share of all the node's positions)."""
        cy0, cy1, cx0, cx1 = tile.core
        ty0, _, tx0, _ = tile.box
        out = {}
        for node, s in self.layout.strides.items():
            fh, fw = full[node]
            gy0, gx0 = cy0 // s, cx0 // s
            gy1 = fh if cy1 == size_hw[0] else min(fh, cy1 // s)
            gx1 = fw if cx1 == size_hw[1] else min(fw, cx1 // s)
            a = acts[node]
            ly0, lx0 = gy0 - ty0 // s, gx0 - tx0 // s
            ly1, lx1 = ly0 + (gy1 - gy0), lx0 + (gx1 - gx0)
            if ly1 > a.shape[-2] or lx1 > a.shape[-1]:
                raise RuntimeError(f"tile {tile} does not cover its activations of {node}: a bug")
            share = max(0, gy1 - gy0) * max(0, gx1 - gx0) / (fh * fw)
            out[node] = (a[:, :, ly0:ly1, lx0:lx1], share)
        return out
