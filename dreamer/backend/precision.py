"""Precision policy and out-of-memory recognition: plain functions, no state."""

from __future__ import annotations

import contextlib
import gc

import torch

__all__ = ["PRECISION_DTYPES", "FP16_LOSS_SCALE", "resolve_precision", "is_oom", "free_memory"]

#: precision name -> autocast dtype (None: no autocast, plain fp32)
PRECISION_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

#: fp16 backward passes multiply the objective by this (and divide the gradient after): layer
#: objectives are means over up to millions of activations, whose gradients would otherwise fall
#: below fp16's smallest normal number; a constant (not the pixel count) keeps un-averaged terms
#: such as class logits far below fp16's maximum (65504)
FP16_LOSS_SCALE = 1024.0


def resolve_precision(precision: str, device: torch.device) -> str:
    """The arithmetic a run will use: ``fp32``, ``bf16`` or ``fp16``.

    ``auto`` is bf16 on CUDA cards with native bf16 and fp32 everywhere else: on CPUs without
    native bf16 units autocast emulates it and was measured 15x slower than fp32. An explicit
    choice is used as given, on any device.
    """
    if precision != "auto":
        if precision not in PRECISION_DTYPES:
            raise ValueError(f"unknown precision {precision!r}")
        return precision
    if device.type == "cuda":
        # asked of the card named (a bare "cuda" is the current one)
        where = torch.cuda.device(device) if device.index is not None else contextlib.nullcontext()
        with where:
            if torch.cuda.is_bf16_supported(including_emulation=False):
                return "bf16"
    return "fp32"


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


def free_memory(device: torch.device) -> None:
    """Give back what an out-of-memory failure left behind (Python garbage, CUDA's cache)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
