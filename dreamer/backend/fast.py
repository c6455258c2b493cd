"""The fast path: a BatchNorm-folded, channels-last copy of the network, reduced precision,
and CUDA graphs replayed per octave shape.

Nothing here changes what is dreamed about, only how fast: the fp32 fast path agrees with the
exact reference path (`gradients.EagerGradient`) to float rounding, bf16/fp16 to well under 1%
of the objective. The image and its update always stay fp32; only the network's forward and
backward run in reduced precision (autocast).

Prepared copies of a network and the CUDA graphs captured for them are cached per network
(keyed weakly on its module, invalidated when its weights change in place), so a video that
calls the engine once per frame pays for folding and capture once.
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..objectives import Objective

__all__ = [
    "resolve_precision",
    "fold_batchnorm",
    "conv_bn_pairs",
    "Forward",
    "prepare_forward",
    "FastGradient",
    "GraphedGradient",
    "objective_key",
    "is_oom",
    "clear_cache",
]

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


#: fp16 backward passes multiply the objective by this (and divide the gradient after): layer
#: objectives are means over up to millions of activations, whose gradients would otherwise fall
#: below fp16's smallest normal number; a constant (not the pixel count) keeps un-averaged terms
#: such as class logits far below fp16's maximum (65504)
FP16_LOSS_SCALE = 1024.0


def resolve_precision(precision: str, device: torch.device) -> str:
    """The arithmetic a run will use: ``fp32``, ``bf16`` or ``fp16``.

    ``auto`` is bf16 on CUDA cards that support it and fp32 everywhere else: on CPUs without
    native bf16 units autocast emulates it and was measured 15x slower than fp32.
    """
    if precision != "auto":
        if precision not in _DTYPES:
            raise ValueError(f"unknown precision {precision!r}")
        return precision
    if device.type == "cuda":
        # native bf16 only (Ampere and newer): emulated bf16 would be slower than fp32; asked of
        # the card named (a bare "cuda" is the current one)
        where = torch.cuda.device(device) if device.index is not None else contextlib.nullcontext()
        with where:
            if torch.cuda.is_bf16_supported(including_emulation=False):
                return "bf16"
    return "fp32"


# ---------------------------------------------------------------------------------------------
# BatchNorm folding


def _trace(module: nn.Module):
    import torch.fx

    try:
        return torch.fx.symbolic_trace(module)
    except Exception:  # data-dependent control flow, hooks, ...: look inside instead
        return None


def conv_bn_pairs(module: nn.Module, *, protected: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(conv path, bn path) of every BatchNorm2d applied directly and only to a Conv2d's output.

    Found by tracing the forward (torch.fx), so only pairs that really run one after the other
    are reported; modules that cannot be traced are searched child by child. Convolutions in
    `protected` (module paths whose raw output somebody reads) are left alone.
    """
    pairs: list[tuple[str, str]] = []

    def visit(mod: nn.Module, prefix: str) -> None:
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in mod.modules())
        if not has_bn:
            return
        gm = _trace(mod) if not isinstance(mod, nn.BatchNorm2d) else None
        if gm is None:
            for name, child in mod.named_children():
                visit(child, f"{prefix}{name}.")
            return
        calls: dict[str, int] = {}
        for node in gm.graph.nodes:
            if node.op == "call_module":
                calls[node.target] = calls.get(node.target, 0) + 1
        for node in gm.graph.nodes:
            if node.op != "call_module" or node.kwargs or len(node.args) != 1:
                continue
            bn = gm.get_submodule(node.target)
            src = node.args[0]
            if not isinstance(bn, nn.BatchNorm2d) or getattr(src, "op", None) != "call_module":
                continue
            conv = gm.get_submodule(src.target)
            ok = (
                isinstance(conv, nn.Conv2d)
                and len(src.users) == 1
                and calls[src.target] == 1
                and calls[node.target] == 1
                and bn.running_mean is not None
                and bn.running_var is not None
                and bn.num_features == conv.out_channels
                and f"{prefix}{src.target}" not in protected
            )
            if ok:
                pairs.append((f"{prefix}{src.target}", f"{prefix}{node.target}"))

    visit(module, "")
    return pairs


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    # y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta, computed in float64 then cast back
    dtype = conv.weight.dtype
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    bias = -bn.running_mean.double() * scale
    if conv.bias is not None:
        bias = bias + conv.bias.double() * scale
    if bn.bias is not None:
        bias = bias + bn.bias.double()
    conv.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(dtype))
    conv.bias = nn.Parameter(bias.to(dtype), requires_grad=False)


def fold_batchnorm(module: nn.Module, *, protected: Sequence[str] = (), inplace: bool = False) -> nn.Module:
    """A copy of `module` (eval mode) with each BatchNorm2d folded into the Conv2d before it.

    The BatchNorm is replaced by `nn.Identity`, so module paths and forward code are unchanged;
    outputs agree with the original to float rounding. The original is never modified unless
    `inplace`. Only valid in eval mode (running statistics), which is how networks are dreamed.
    The number of BatchNorms folded is left in the result's `folded_batchnorms` attribute.
    """
    target = module if inplace else copy.deepcopy(module)
    target.eval()
    pairs = conv_bn_pairs(target, protected=protected)
    for conv_path, bn_path in pairs:
        _fold_into(target.get_submodule(conv_path), target.get_submodule(bn_path))
        parent_path, _, name = bn_path.rpartition(".")
        parent = target.get_submodule(parent_path) if parent_path else target
        setattr(parent, name, nn.Identity())
    target.folded_batchnorms = len(pairs)  # type: ignore[assignment]
    return target


# ---------------------------------------------------------------------------------------------
# The prepared forward pass


def is_oom(exc: BaseException | None) -> bool:
    """Whether `exc` (or what it was raised from) is an out-of-memory error of any device."""
    seen = 0
    while exc is not None and seen < 4:
        if isinstance(exc, torch.OutOfMemoryError):
            return True
        text = str(exc).lower()
        if isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


@contextlib.contextmanager
def _cudnn_benchmark(enabled: bool) -> Iterator[None]:
    # autotuned convolutions for the fast path only; the global flag is restored afterwards
    if not enabled:
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


@dataclass
class Forward:
    """How to run a prepared extractor: (B,3,H,W) fp32 [0,1] on `device` -> {node: activation}.

    `dtype` None is fp32; otherwise the forward runs under autocast to that dtype (the input
    stays fp32, so its gradient is fp32). `loss_scale(x)` is what the objective is multiplied
    by before the backward pass (fp16 gradients would underflow otherwise) and divided out after.
    """

    extractor: nn.Module
    device: torch.device
    precision: str
    channels_last: bool
    #: how many BatchNorms were folded into convolutions
    folded: int = 0
    #: stored activation bytes per input pixel and image, from a probe (see tiling); filled lazily
    bytes_per_pixel: float | None = None
    #: called with `bytes_per_pixel` once the probe has measured it
    on_probe: Callable[[float], None] | None = None

    @property
    def dtype(self) -> torch.dtype | None:
        return _DTYPES[self.precision]

    def loss_scale(self, x: torch.Tensor) -> float:
        return FP16_LOSS_SCALE if self.precision == "fp16" else 1.0

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = self.dtype
        if dtype is None:
            return self.extractor(x)
        # cache off: weights are re-cast each call, which CUDA graph capture requires
        with torch.autocast(self.device.type, dtype=dtype, cache_enabled=False):
            return self.extractor(x)

    def context(self):
        """The context every forward/backward of this path runs in (cudnn autotuning on CUDA)."""
        return _cudnn_benchmark(self.device.type == "cuda")


def _protected_paths(extractor: nn.Module) -> list[str]:
    names = getattr(extractor, "names", None)
    taps = getattr(extractor, "taps", ())
    if names is not None:  # StagedExtractor: stage i lives at stages.i
        return [f"stages.{i}" for i, n in enumerate(names) if n in taps]
    return [f"module.{t}" for t in taps]  # HookExtractor


def _network_key(network) -> Hashable:
    # what besides the module decides a forward pass: two Networks may wrap one module with
    # different input normalisation (or layer tables)
    norm = getattr(network, "normalize", None)
    stats = tuple(
        tuple(getattr(norm, name).flatten().tolist()) if isinstance(getattr(norm, name, None), torch.Tensor) else None
        for name in ("mean", "std")
    )
    spec = getattr(network, "spec", None)
    return (stats, spec.name if spec is not None else None)


def _weights_version(module: nn.Module) -> int:
    # bumped by every in-place change (load_state_dict, copy_, optimiser steps)
    return sum(t._version for t in module.parameters()) + sum(t._version for t in module.buffers())


_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GRADIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MAX_GRADIENTS = 8


def clear_cache() -> None:
    """Forget every prepared network copy and captured CUDA graph (frees their memory)."""
    _FORWARDS.clear()
    _GRADIENTS.clear()


def prepare_forward(network, nodes: Sequence[str], precision: str) -> Forward:
    """The fast forward pass of `network` up to `nodes` in `precision` (fp32/bf16/fp16).

    A copy of only the stages that run is made, its BatchNorms folded into the convolutions,
    and (on CPU and CUDA) converted to channels_last. Cached per network and weights version.
    """
    device = network.device
    key = (tuple(nodes), precision, str(device), _network_key(network))
    version = _weights_version(network.module)
    per_net = _FORWARDS.setdefault(network.module, {})
    hit = per_net.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    base = network.extractor(nodes)
    extractor = fold_batchnorm(base, protected=_protected_paths(base))
    pairs = extractor.folded_batchnorms
    channels_last = device.type in ("cpu", "cuda")
    if channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    for p in extractor.parameters():
        p.requires_grad_(False)
    forward = Forward(extractor, device, precision, channels_last, folded=pairs)
    per_net[key] = (version, forward)
    return forward


# ---------------------------------------------------------------------------------------------
# Gradient functions


class FastGradient:
    """The gradient of the objective through a prepared `Forward` (folded, channels_last,
    autocast). Same contract as `gradients.EagerGradient`: images (B,3,H,W) fp32 in [0,1] ->
    (gradient (B,3,H,W) fp32 contiguous, objective (B,) fp32), both detached, on the device.
    No host synchronisation happens inside."""

    def __init__(
        self,
        forward: Forward,
        objective: Objective,
        *,
        tv_weight: float = 0.0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.forward = forward
        self.objective = objective
        self.tv_weight = tv_weight
        self.transform = transform

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from .gradients import total_variation

        with self.forward.context():
            x = x.detach().requires_grad_(True)
            inp = self.transform(x) if self.transform is not None else x
            score = self.objective(self.forward(inp)).float()
            total = score - self.tv_weight * total_variation(x) if self.tv_weight else score
            scale = self.forward.loss_scale(x)
            (grad,) = torch.autograd.grad(total.sum() * scale if scale != 1.0 else total.sum(), x)
            if scale != 1.0:
                grad = grad / scale
        return grad.contiguous(), score.detach()


class GraphedGradient:
    """Replays a CUDA graph of `inner` captured once per input shape (one per octave size).

    The caller's jitter roll happens before, outside the graph; the graph reads a static input
    buffer and writes static outputs, which are cloned at once so results stay valid after the
    next replay. The graphs of all shapes share one memory pool (they are replayed one at a
    time on one stream, no graph reads another's memory, and every output is cloned before
    another graph runs), so the octaves of a dream hold the memory of the largest, not of all.
    If capture fails (an objective that copies from the host, an op that syncs), graphs
    are switched off and `inner` runs eagerly; the reason is kept in `failure`. Out-of-memory
    errors are re-raised so that tiling can take over. On other devices it just calls `inner`.
    """

    def __init__(self, inner: FastGradient, *, max_graphs: int = 8, warmup: int = 2) -> None:
        self.inner = inner
        self.max_graphs = max_graphs
        self.warmup = warmup
        self.failure: BaseException | None = None
        self._graphs: OrderedDict = OrderedDict()
        self._pool = None
        #: inputs on this kind of device are graphed; others go straight to `inner`
        self.device_type = "cuda"

    @property
    def graphs(self) -> int:
        """How many graphs are held (one per input shape seen, at most `max_graphs`)."""
        return len(self._graphs)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.failure is not None or x.device.type != self.device_type:
            return self.inner(x)
        key = (tuple(x.shape), x.dtype, str(x.device))
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(key, x)
            if entry is None:
                return self.inner(x)
        else:
            self._graphs.move_to_end(key)
        graph, static_in, static_grad, static_score = entry
        with _on_device(x.device):
            static_in.copy_(x)
            graph.replay()
            return static_grad.clone(), static_score.clone()

    def _capture(self, key, x: torch.Tensor):
        with _on_device(x.device):  # graphs capture on the current device: make it x's
            static_in = torch.empty_like(x, memory_format=torch.contiguous_format).copy_(x)
            try:
                if self._pool is None:
                    self._pool = _new_pool()
                with self.inner.forward.context():
                    graph, (static_grad, static_score) = _capture_graph(self.inner, static_in, self._pool, self.warmup)
            except Exception as exc:
                if is_oom(exc):
                    raise torch.OutOfMemoryError(f"out of memory while capturing a CUDA graph: {exc}") from exc
                self.failure = exc
                return None
        entry = (graph, static_in, static_grad, static_score)
        self._graphs[key] = entry
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        return entry


def _on_device(device: torch.device):
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _new_pool():
    return torch.cuda.graph_pool_handle()


def _capture_graph(fn: Callable, static_in: torch.Tensor, pool, warmup: int):
    """(graph, outputs): `fn(static_in)` captured in a CUDA graph whose replay rewrites `outputs`."""
    # warm up on a side stream first (lazy initialisation, cudnn autotuning), as graphs require
    side = torch.cuda.Stream(device=static_in.device)
    side.wait_stream(torch.cuda.current_stream(static_in.device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn(static_in)
    torch.cuda.current_stream(static_in.device).wait_stream(side)
    torch.cuda.synchronize(static_in.device)
    graph = torch.cuda.CUDAGraph()
    # captured by hand rather than with torch.cuda.graph(): when the body breaks the capture,
    # capture_end raises too, and the stream context must still be left (or later eager work
    # would run on the capture stream); the body's own error is the one reported
    with torch.cuda.stream(side):
        graph.capture_begin(pool=pool)
        try:
            outputs = fn(static_in)
        except BaseException:
            try:
                graph.capture_end()
            except Exception:
                pass
            raise
        graph.capture_end()
    torch.cuda.current_stream(static_in.device).wait_stream(side)
    return graph, outputs


# ---------------------------------------------------------------------------------------------
# Recognising the same objective again (so a video reuses its captured graphs)


def objective_key(objective: Objective) -> Hashable:
    """A key equal for two objectives only if they compute the same thing (see `Objective.key`:
    the built-in objectives describe themselves; others are equal only to themselves)."""
    return ("objective", objective.nodes, objective.key)


def cached_gradient(network, key: Hashable, build: Callable[[], object]):
    """The gradient function cached under `key` for `network` (built by `build` on a miss).

    Entries are dropped when the network's weights change in place; at most a few are kept.
    """
    version = _weights_version(network.module)
    key = (key, _network_key(network))
    per_net = _GRADIENTS.setdefault(network.module, OrderedDict())
    hit = per_net.get(key)
    if hit is not None and hit[0] == version:
        per_net.move_to_end(key)
        return hit[1]
    fn = build()
    per_net[key] = (version, fn)
    while len(per_net) > _MAX_GRADIENTS:
        per_net.popitem(last=False)
    return fn
