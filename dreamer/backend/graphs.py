"""CUDA graphs: a gradient function captured once per input shape and replayed after.

A step of the fast path launches hundreds of small kernels; replaying a captured graph launches
them in one go. Graphs are an optimisation only: whatever cannot be captured runs eagerly.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable

import torch

from .precision import is_oom

__all__ = ["GraphedFunction"]

GradientPair = tuple[torch.Tensor, torch.Tensor]


class GraphedFunction:
    """Replays a CUDA graph of `fn` (images -> (gradient, score)) captured once per input shape.

    The graph reads a static input buffer and writes static outputs, which are cloned at once so
    results stay valid after the next replay. The graphs of all shapes share one memory pool
    (they are replayed one at a time on one stream, no graph reads another's memory, and every
    output is cloned before another graph runs), so the octaves of a dream hold the memory of
    the largest, not of all. If capture fails (an objective that copies from the host, an op
    that syncs), graphs are switched off and `fn` runs eagerly; the reason is kept in `failure`.
    Out-of-memory errors are re-raised so that tiling can take over. Inputs on other devices go
    straight to `fn`.
    """

    def __init__(self, fn: Callable[[torch.Tensor], GradientPair], *, context=contextlib.nullcontext,
                 max_graphs: int = 8, warmup: int = 2) -> None:
        self.fn = fn
        self.context = context
        self.max_graphs = max_graphs
        self.warmup = warmup
        self.failure: BaseException | None = None
        self._graphs: OrderedDict = OrderedDict()
        self._pool = None
        #: inputs on this kind of device are graphed; others go straight to `fn`
        self.device_type = "cuda"

    @property
    def graphs(self) -> int:
        """How many graphs are held (one per input shape seen, at most `max_graphs`)."""
        return len(self._graphs)

    def __call__(self, x: torch.Tensor) -> GradientPair:
        if self.failure is not None or x.device.type != self.device_type:
            return self.fn(x)
        key = (tuple(x.shape), x.dtype, str(x.device))
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(key, x)
            if entry is None:
                return self.fn(x)
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
                    self._pool = new_pool()
                with self.context():
                    graph, (static_grad, static_score) = capture_graph(self.fn, static_in, self._pool, self.warmup)
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


def new_pool():
    """A memory pool for the graphs of one function."""
    return torch.cuda.graph_pool_handle()


def capture_graph(fn: Callable, static_in: torch.Tensor, pool, warmup: int):
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
