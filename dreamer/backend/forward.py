"""Forward passes the backend runs: the network as it is (the exact path), or a prepared copy
(BatchNorm folded, channels_last, autocast to bf16/fp16: the fast path)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn

from .folding import fold_batchnorm
from .precision import FP16_LOSS_SCALE, PRECISION_DTYPES

__all__ = ["Forward", "exact_forward", "fast_forward"]


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


class Forward:
    """(B,3,H,W) fp32 [0,1] on `device` -> {node: activation}, as prepared.

    `precision` fp32 runs plainly; bf16/fp16 under autocast (the input stays fp32, so its
    gradient is fp32). `loss_scale` is what the objective is multiplied by before the backward
    pass (fp16 gradients would underflow otherwise) and divided out after. `exact`: the
    network's own modules, unchanged (the reference path). `bytes_per_pixel` is filled in by
    the first memory probe (see `tiling.probe_bytes_per_pixel`).
    """

    def __init__(
        self,
        extractor: nn.Module,
        device: torch.device,
        precision: str,
        *,
        exact: bool,
        channels_last: bool = False,
        folded: int = 0,
    ) -> None:
        self.extractor = extractor
        self.device = device
        self.precision = precision
        self.exact = exact
        self.channels_last = channels_last
        self.folded = folded
        self.dtype = PRECISION_DTYPES[precision]
        self.loss_scale = FP16_LOSS_SCALE if precision == "fp16" else 1.0
        self.bytes_per_pixel: float | None = None

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype is None:
            return self.extractor(x)
        # cache off: weights are re-cast each call, which CUDA graph capture requires
        with torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False):
            return self.extractor(x)

    def context(self):
        """The context every forward/backward of the fast path runs in (cudnn autotuning on CUDA)."""
        return _cudnn_benchmark(self.device.type == "cuda" and not self.exact)


def exact_forward(network, nodes: Sequence[str]) -> Forward:
    """The network's own modules up to `nodes`, fp32, no copy: same input, same bits."""
    return Forward(network.extractor(nodes), network.device, "fp32", exact=True)


def _protected_paths(extractor: nn.Module) -> list[str]:
    # convolutions whose raw output is itself an activation somebody reads stay unfolded
    names = getattr(extractor, "names", None)
    taps = getattr(extractor, "taps", ())
    if names is not None:  # StagedExtractor: stage i lives at stages.i
        return [f"stages.{i}" for i, n in enumerate(names) if n in taps]
    return [f"module.{t}" for t in taps]  # HookExtractor


def fast_forward(network, nodes: Sequence[str], precision: str) -> Forward:
    """A copy of the stages of `network` that reach `nodes`, BatchNorms folded, weights frozen,
    channels_last on CPU and CUDA, run in `precision` (fp32, bf16 or fp16)."""
    device = network.device
    base = network.extractor(nodes)
    extractor, folded = fold_batchnorm(base, protected=_protected_paths(base))
    channels_last = device.type in ("cpu", "cuda")
    if channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    for p in extractor.parameters():
        p.requires_grad_(False)
    return Forward(extractor, device, precision, exact=False, channels_last=channels_last, folded=folded)
