"""Tiled gradients, so that images of any size dream within a fixed memory budget.

The image is cut into tiles whose *cores* partition it; each tile is run through the network
with a *halo* (overlap) of half the layer's receptive field plus one stride on every side, so
each activation a tile owns sees exactly the pixels it would see in the whole image. Tile
origins sit on multiples of the layer's stride, so every tile's activation grid lines up with
the whole image's. Each tile contributes its owned activations' share of the objective
(weighted by owned positions / all positions, per layer), and the input gradients of all
tiles are summed (halos overlap). The result is the whole image's gradient and objective,
equal to the untiled ones up to float summation order. The engine then normalises the step by
the mean |gradient| of the whole image, exactly as without tiles.

This holds for objectives whose spatial terms average over positions (`layer_l2`, `channel`
and sums of them: every spatial objective dreamer builds). Layers without a known stride and
receptive field (class logits, custom networks) are never tiled.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import DreamerError
from .fast import Forward, is_oom
from ..objectives import Objective

__all__ = [
    "Tile",
    "TileLayout",
    "plan_tiles",
    "layout_for",
    "memory_budget",
    "estimate_bytes",
    "probe_bytes_per_pixel",
    "TiledGradient",
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


def layout_for(network, objective: Objective) -> TileLayout | None:
    """The tiling layout of `objective` on `network`, or None if it cannot be tiled exactly
    (a node without a known stride and receptive field: logits, custom networks)."""
    layers = {info.node: info for info in network.layers()}
    strides: dict[str, int] = {}
    fields = []
    for node in objective.nodes:
        info = layers.get(node)
        if info is None or info.stride is None or info.receptive_field is None:
            return None
        strides[node] = info.stride
        fields.append(info.receptive_field)
    if not strides:
        return None
    stride = max(strides.values())
    if any(stride % s for s in strides.values()):
        return None
    rf = max(fields)
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
    no-grad forward on a `size`x`size` probe. Cached on `forward`."""
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
    if forward.on_probe is not None:
        forward.on_probe(forward.bytes_per_pixel)
    return forward.bytes_per_pixel


def estimate_bytes(bytes_per_pixel: float, batch: int, size_hw: tuple[int, int]) -> int:
    """Estimated peak working memory of one gradient of a (batch,3,H,W) input."""
    pixels = batch * size_hw[0] * size_hw[1]
    return int(pixels * (_WORKING_FACTOR * bytes_per_pixel + _IMAGE_BYTES_PER_PIXEL))


class TiledGradient:
    """A GradientFn that runs `whole` when the image fits the memory budget, and tiles otherwise.

    - `tile` (pixels): the core size of the tiles; None picks it from the budget (the smaller
      of a fixed cap and the device's free memory) and the estimated memory per pixel.
    - An out-of-memory error (of `whole` or of a tile) is caught, memory freed, and the same
      gradient computed again with tiles half the size; the size that worked is remembered for
      that image shape. When even the smallest tiles do not fit, a DreamerError says so.

    Same contract as `EagerGradient`: (B,3,H,W) fp32 -> (gradient (B,3,H,W) fp32, objective (B,)).
    """

    def __init__(
        self,
        whole: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        forward: Forward,
        objective: Objective,
        layout: TileLayout,
        *,
        tv_weight: float = 0.0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        tile: int | None = None,
        budget: int | None = None,
    ) -> None:
        self.whole = whole
        self.forward = forward
        self.objective = objective
        self.layout = layout
        self.tv_weight = tv_weight
        self.transform = transform
        self.tile = tile
        self.budget = budget
        #: (B, H, W) -> core size that worked (None: the whole image), learned from OOMs
        self.cores: dict[tuple[int, int, int], int | None] = {}
        #: how many tiles the last call used (1: untiled)
        self.last_tiles = 1
        self._meta: torch.nn.Module | None = None
        self._sizes: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}

    @property
    def min_core(self) -> int:
        return self.layout.stride * 2

    def core_for(self, shape: torch.Size | tuple[int, ...]) -> int | None:
        """The tile core size for a (B,3,H,W) input, or None to run the whole image at once."""
        b, _, h, w = shape
        key = (b, h, w)
        if key not in self.cores:  # decided once per shape (no device queries in the step loop)
            self.cores[key] = self._choose_core(b, h, w)
        return self.cores[key]

    def _choose_core(self, b: int, h: int, w: int) -> int | None:
        s = self.layout.stride
        if self.tile is not None:
            core = max(self.min_core, self.tile // s * s)
            return None if core >= max(h, w) else core
        budget = self.budget if self.budget is not None else memory_budget(self.forward.device)
        try:
            bpp = probe_bytes_per_pixel(self.forward)
        except Exception as exc:
            if not is_oom(exc):
                raise
            return None  # no room even for the probe: start whole and let the retry find a size
        if estimate_bytes(bpp, b, (h, w)) <= budget:
            return None
        side = math.sqrt(budget / (b * (_WORKING_FACTOR * bpp + _IMAGE_BYTES_PER_PIXEL)))
        core = max(self.min_core, int(side - 2 * self.layout.halo) // s * s)
        return None if core >= max(h, w) else core

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        core = self.core_for(x.shape)
        while True:
            try:
                if core is None:
                    self.last_tiles = 1
                    return self.whole(x)
                return self._tiled(x, core)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                core = self._smaller(core, h, w, exc)
                self.cores[(b, h, w)] = core
                _free(x.device)

    def _smaller(self, core: int | None, h: int, w: int, exc: BaseException) -> int:
        s = self.layout.stride
        current = max(h, w) if core is None else core
        smaller = (current // 2) // s * s
        if smaller < self.min_core:
            raise DreamerError(
                f"out of memory even with tiles of {current} pixels ({self.layout.halo} px overlap) "
                f"on {self.forward.device}",
                hint="free memory used by other programs, use --precision bf16, a shallower --layer, or --device cpu",
            ) from exc
        return smaller

    # -- the tiled computation -----------------------------------------------------------------

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

    def _tiled(self, x: torch.Tensor, core: int) -> tuple[torch.Tensor, torch.Tensor]:
        from .gradients import total_variation

        b, _, h, w = x.shape
        x = x.detach()
        if self.transform is not None:
            xg = x.clone().requires_grad_(True)
            with self.forward.context():
                y = self.transform(xg)
            image = y.detach()
        else:
            image = x
        full = self.output_sizes((h, w))
        tiles = plan_tiles((h, w), core, self.layout.halo, self.layout.stride)
        self.last_tiles = len(tiles)
        grad = torch.zeros_like(image, memory_format=torch.contiguous_format)
        score = torch.zeros(b, dtype=torch.float32, device=x.device)
        scale = self.forward.loss_scale(x)  # fp16: sized for the whole image, like the untiled path
        with self.forward.context():
            for tile in tiles:
                ty0, ty1, tx0, tx1 = tile.box
                piece = image[:, :, ty0:ty1, tx0:tx1].contiguous().requires_grad_(True)
                part = self._tile_objective(self.forward(piece), tile, full, (h, w))
                if part is None:
                    continue
                (g,) = torch.autograd.grad(part.sum() * scale if scale != 1.0 else part.sum(), piece)
                if scale != 1.0:
                    g = g / scale
                grad[:, :, ty0:ty1, tx0:tx1] += g
                score += part.detach()
                del g, part, piece
        if self.transform is not None:
            (grad,) = torch.autograd.grad(y, xg, grad)
        if self.tv_weight:
            xt = x.clone().requires_grad_(True)
            (gtv,) = torch.autograd.grad(total_variation(xt).sum(), xt)
            grad = grad - self.tv_weight * gtv
        return grad.contiguous(), score

    def _tile_objective(
        self,
        acts: dict[str, torch.Tensor],
        tile: Tile,
        full: dict[str, tuple[int, int]],
        size_hw: tuple[int, int],
    ) -> torch.Tensor | None:
        """This tile's share of the whole image's objective, (B,), or None if it owns nothing."""
        cy0, cy1, cx0, cx1 = tile.core
        ty0, _, tx0, _ = tile.box
        crops: dict[str, torch.Tensor] = {}
        weights: dict[str, float] = {}
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
            crops[node] = a[:, :, ly0:ly1, lx0:lx1]
            weights[node] = max(0, gy1 - gy0) * max(0, gx1 - gx0) / (fh * fw)
        live = [n for n in crops if weights[n] > 0]
        if not live:
            return None
        if len(crops) == 1:
            (node,) = live
            return weights[node] * self.objective(crops).float()
        # several layers: each term alone (the others zero, which adds nothing to a mean of
        # squares or of activations), weighted by its own share of positions
        total = None
        for node in live:
            alone = {n: (c if n == node else c.new_zeros(c.shape[0], c.shape[1], 1, 1)) for n, c in crops.items()}
            term = weights[node] * self.objective(alone).float()
            total = term if total is None else total + term
        return total


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
