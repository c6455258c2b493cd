"""`PreparedNetwork`: the one object both loops ask for gradients.

A loop hands it images and an objective and gets back the gradient of the objective with
respect to the images (and the objective's value). Everything about *how* - precision, BatchNorm
folding, channels_last, CUDA graphs, tiling, out-of-memory retry - is decided here, and
everything it learns (prepared copies, captured graphs, tile sizes that fit) lives in the object,
which the caller creates and holds: a zoom video keeps one for all its frames.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import torch

from ..errors import ConfigError, DreamerError
from ..objectives import Objective
from .forward import Forward, exact_forward, fast_forward
from .graphs import GraphedFunction
from .precision import free_memory, is_oom, resolve_precision
from .tiling import Tiler, choose_core, layout_for, memory_budget, probe_bytes_per_pixel, smaller_core, untileable_reason

__all__ = ["PreparedNetwork", "prepare", "GradientPair"]

#: (gradient (B,3,H,W) float32, objective (B,) float32), both detached, on the network's device
GradientPair = tuple[torch.Tensor, torch.Tensor]

_UNSET = object()


def _fingerprint(network) -> tuple:
    # storage address and in-place version of every weight: rebinding `param.data` changes the
    # first, `copy_`/`load_state_dict`/optimiser steps the second
    tensors = [*network.module.parameters(), *network.module.buffers(), *network.normalize.buffers()]
    return tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in tensors)


class PreparedNetwork:
    """`network` (a loaded `dreamer.models.Network`) made ready to give gradients.

    ``gradient(images, objective, precision=..., tile=...)`` takes (B,3,H,W) float32 images in
    [0,1] on the network's device (what the network sees, after any transform) and returns
    ``(d objective.sum() / d images, objective)``. How:

    - ``precision="fp32"``: the exact path - the network's own modules, plain autograd. The same
      input gives the same bits; this is the reference the other paths are tested against.
    - ``auto``/``bf16``/``fp16`` (``auto``: bf16 on CUDA cards with native bf16, fp32 elsewhere,
      see `resolve_precision`): the fast path - a copy of the stages the objective needs with
      each BatchNorm folded into its convolution (`torch.nn.utils.fusion`), weights frozen,
      channels_last, under autocast; on CUDA replayed from a CUDA graph captured once per
      objective and input shape. Your own networks (`Network.from_module`) are not copied when
      the arithmetic stays fp32: their forward may reach beyond their submodules.
    - Tiling: an objective that is a mean over positions (`Objective.tileable`) on an image that
      does not fit the memory budget (or is larger than `tile` pixels) is computed tile by tile,
      with the same result up to float rounding. An out-of-memory error halves the tiles and
      tries again, and the size that worked is remembered per image shape. Other objectives
      always run whole; asking them for a `tile` is a ConfigError, and running out of memory a
      DreamerError that says why they cannot be split.

    Weights are read when a path is prepared (at the first gradient for an objective's layers and
    a precision). `refresh()` - both loops call it at the start of every run - forgets all that was
    prepared if any parameter or buffer of the network has been changed in place or rebound
    (``param.data = ...``) since. If you change weights in any other way, make a new
    PreparedNetwork.
    """

    def __init__(self, network, *, budget: int | None = None, cuda_graphs: bool = True, max_graphs: int = 8) -> None:
        if isinstance(network, PreparedNetwork):
            raise TypeError("network is already a PreparedNetwork")
        self.network = network
        self.budget = budget
        self.cuda_graphs = cuda_graphs
        self.max_graphs = max_graphs
        #: what the last gradient call did (path, precision, tiles ...), for reports
        self.last: dict[str, Any] = {}
        self._fingerprint: tuple | None = None  # taken when something is first prepared
        self._forget()

    def _forget(self) -> None:
        self._forwards: dict[Hashable, Forward] = {}
        self._graphs: OrderedDict[Hashable, tuple[Objective, GraphedFunction]] = OrderedDict()
        self._tilers: dict[Hashable, Tiler] = {}
        self._cores: dict[Hashable, int | None] = {}

    # -- what it is ------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.network.device

    @property
    def min_size(self) -> int:
        return self.network.min_size

    def resolve_precision(self, precision: str) -> str:
        """What `precision` (auto, fp32, bf16, fp16) means on this network's device."""
        return resolve_precision(precision, self.device)

    def refresh(self) -> bool:
        """Forget everything prepared if the network's weights changed since; True if they had."""
        if self._fingerprint is None:  # nothing prepared yet
            return False
        now = _fingerprint(self.network)
        if now == self._fingerprint:
            return False
        self._fingerprint = None
        self._forget()
        return True

    # -- gradients -------------------------------------------------------------------------------

    def gradient(
        self, images: torch.Tensor, objective: Objective, *, precision: str = "auto", tile: int | None = None
    ) -> GradientPair:
        """(gradient of ``objective(images).sum()`` with respect to `images`, objective (B,))."""
        resolved = self.resolve_precision(precision)
        exact = precision == "fp32" or (self.network.spec is None and resolved == "fp32")
        forward_key = (objective.nodes, resolved, exact)
        forward = self._forward(forward_key)
        layout = layout_for(self.network, objective)
        if tile is not None and layout is None:
            reason = untileable_reason(self.network, objective)
            raise ConfigError("tile", tile, f"unset: {reason}, so it cannot be split into tiles")
        whole = self._whole(forward, forward_key, objective)
        self.last = {
            "path": "exact" if exact else "fast",
            "precision": resolved,
            "folded_batchnorms": forward.folded,
            "channels_last": forward.channels_last,
        }
        if isinstance(whole, GraphedFunction):
            self.last["cuda_graphs"] = whole.graphs
            if whole.failure is not None:
                self.last["cuda_graphs_off"] = f"{type(whole.failure).__name__}: {whole.failure}"[:300]
        b, _, h, w = images.shape
        if layout is None:
            self.last["tiles"] = 1
            try:
                return whole(images)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                free_memory(self.device)
                raise DreamerError(
                    f"out of memory computing the gradient of a {w}x{h} image (batch {b}) on {self.device}; "
                    f"{untileable_reason(self.network, objective)}, so it cannot be split into tiles",
                    hint="use a smaller image or batch, --precision bf16, or --device cpu",
                ) from exc
        tiler = self._tilers.get(forward_key)
        if tiler is None:
            tiler = self._tilers[forward_key] = Tiler(forward, layout)
        self.last["halo"] = layout.halo
        core_key = (forward_key, tuple(layout.strides.items()), tuple(images.shape), tile)
        core = self._cores.get(core_key, _UNSET)
        if core is _UNSET:  # decided once per shape: no device queries in the step loop
            core = self._cores[core_key] = self._choose_core(forward, layout, images.shape, tile)
        while True:
            try:
                if core is None:
                    self.last["tiles"] = 1
                    return whole(images)
                result = tiler.gradient(images, objective, core)
                self.last["tiles"] = tiler.last_tiles
                return result
            except Exception as exc:
                if not is_oom(exc):
                    raise
                smaller = smaller_core(core, (h, w), layout)
                if smaller is None:
                    raise DreamerError(
                        f"out of memory even with tiles of {core or max(h, w)} pixels "
                        f"({layout.halo} px overlap) on {self.device}",
                        hint="free memory used by other programs, use --precision bf16, a shallower --layer, "
                        "or --device cpu",
                    ) from exc
                core = self._cores[core_key] = smaller
                free_memory(self.device)

    def _forward(self, key: tuple) -> Forward:
        forward = self._forwards.get(key)
        if forward is None:
            if self._fingerprint is None:
                self._fingerprint = _fingerprint(self.network)
            nodes, resolved, exact = key
            forward = exact_forward(self.network, nodes) if exact else fast_forward(self.network, nodes, resolved)
            self._forwards[key] = forward
        return forward

    def _whole(self, forward: Forward, forward_key: tuple, objective: Objective):
        """The whole-image gradient function of `objective` through `forward` (graphed on CUDA)."""

        def whole(x: torch.Tensor) -> GradientPair:
            return whole_gradient(forward, objective, x)

        if forward.exact or not self.cuda_graphs or self.device.type != "cuda":
            return whole
        key = (forward_key, objective.key)
        entry = self._graphs.get(key)
        if entry is None:
            # the entry keeps the objective alive, so a key made from its id stays its own
            entry = self._graphs[key] = (objective, GraphedFunction(whole, context=forward.context))
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        return entry[1]

    def _choose_core(self, forward: Forward, layout, shape, tile: int | None) -> int | None:
        if tile is not None:
            return choose_core(shape, layout, tile=tile, budget=0, bytes_per_pixel=1.0)
        budget = self.budget if self.budget is not None else memory_budget(self.device)
        try:
            bpp = probe_bytes_per_pixel(forward)
        except Exception as exc:
            if not is_oom(exc):
                raise
            return None  # no room even for the probe: start whole and let the retry find a size
        return choose_core(shape, layout, tile=None, budget=budget, bytes_per_pixel=bpp)


def whole_gradient(forward: Forward, objective: Objective, x: torch.Tensor) -> GradientPair:
    """The gradient of `objective` through `forward` on the whole of `x`, in one pass."""
    with forward.context():
        x = x.detach().requires_grad_(True)
        score = objective(forward(x)).float()
        scale = forward.loss_scale
        (grad,) = torch.autograd.grad(score.sum() * scale if scale != 1.0 else score.sum(), x)
        if scale != 1.0:
            grad = grad / scale
    return grad.contiguous(), score.detach()


def prepare(network) -> PreparedNetwork:
    """`network` as a PreparedNetwork (itself if it already is one)."""
    return network if isinstance(network, PreparedNetwork) else PreparedNetwork(network)
