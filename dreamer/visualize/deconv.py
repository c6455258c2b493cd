"""Deconvnet and guided backpropagation: which pixels of an image drive one unit.

Both are the gradient of a unit with respect to the image, with the backward pass of every
ReLU replaced:

- ``gradient``: the plain gradient (ReLU passes gradient where its input was positive);
- ``deconvnet`` (Zeiler & Fergus, 2014): ReLU passes only positive gradient, whatever its input;
- ``guided`` (Springenberg et al., 2015): both masks: positive input and positive gradient.

torchvision's GoogLeNet applies ``torch.nn.functional.relu`` inside its modules, so the rule is
applied by swapping that function for the duration of a `relu_rule` block (and restored on
the way out, even on errors). `nn.ReLU` modules call the same function and are covered too, and
so are ReLU6 rectifiers (`nn.ReLU6`, ``hardtanh(x, 0, 6)``: EfficientNet-Lite), whose clip at 6
keeps its plain gradient mask.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DreamerError
from .layers import as_batch, check_size, resolve_unit

__all__ = ["RULES", "relu_rule", "unit_gradient", "reconstruct", "to_display"]

RULES = ("guided", "deconvnet", "gradient")

_SWAP_LOCK = threading.RLock()


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clamp_min(0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad.clamp_min(0) * (y > 0).to(grad.dtype)


class _DeconvReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp_min(0)


class _ReLU6Rule(torch.autograd.Function):
    # ReLU6 (EfficientNet-Lite, MobileNets): the rule at the rectifier (guided: positive gradient
    # where the input was positive; deconvnet: positive gradient), the plain gradient mask at the
    # clip (a unit saturated at 6 passes nothing, as in the forward pass)
    @staticmethod
    def forward(ctx, x: torch.Tensor, top: float, guided: bool) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.top, ctx.guided = top, guided
        return x.clamp(0, top)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        passes = (x < ctx.top) & (x > 0) if ctx.guided else x < ctx.top
        return grad.clamp_min(0) * passes.to(grad.dtype), None, None


class ReluCounter:
    """How many ReLU calls went through the swapped function inside a `relu_rule` block."""

    def __init__(self) -> None:
        self.calls = 0


@contextlib.contextmanager
def relu_rule(rule: str) -> Iterator[ReluCounter]:
    """Within the block, ``torch.nn.functional.relu`` back-propagates by `rule` (see module doc).

    Forward values are unchanged (``inplace`` is ignored: a new tensor is returned). The
    original function is restored when the block ends, however it ends. Yields a counter of
    the ReLU calls made through the swap. ``rule="gradient"`` swaps nothing.
    """
    if rule not in RULES:
        raise ConfigError("rule", rule, "one of " + ", ".join(RULES))
    counter = ReluCounter()
    if rule == "gradient":
        yield counter
        return
    fn = _GuidedReLU if rule == "guided" else _DeconvReLU

    def relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:  # noqa: A002 (torch's name)
        counter.calls += 1
        return fn.apply(input)

    with _SWAP_LOCK:
        original, original_hardtanh = F.relu, F.hardtanh

        def hardtanh(input: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0,  # noqa: A002
                     inplace: bool = False) -> torch.Tensor:
            if min_val != 0.0:  # a real hardtanh, not a rectifier: left as it is
                return original_hardtanh(input, min_val, max_val, inplace)
            counter.calls += 1
            return _ReLU6Rule.apply(input, float(max_val), rule == "guided")

        F.relu, F.hardtanh = relu, hardtanh
        try:
            yield counter
        finally:
            F.relu, F.hardtanh = original, original_hardtanh


def unit_gradient(
    network,
    image: torch.Tensor,
    layer: str,
    *,
    rule: str = "guided",
    position: str = "max",
) -> tuple[torch.Tensor, dict]:
    """The gradient of one unit with respect to the image, under a ReLU backward `rule`.

    `layer` names a layer and one channel (``mixed4c:97``; for ``logits:N`` the unit is class
    N's score). `position`: ``max`` takes the channel's strongest position in this image (the
    deconvnet recipe), ``all`` the sum of the whole channel map. `image` is (3,H,W) or
    (1,3,H,W) in [0,1]. Returns the (1,3,H,W) float32 CPU gradient and facts about the unit
    (``name``, ``node``, ``channel``, ``position`` (y, x) or None, ``activation``).
    """
    if position not in ("max", "all"):
        raise ConfigError("position", position, "max or all")
    image = as_batch(image)
    if image.shape[0] != 1:
        raise ValueError("unit_gradient takes one image")
    check_size(image, network)
    info, channel = resolve_unit(network, layer, channel="required", what="deconv")
    x = image.detach().to(network.device, torch.float32).requires_grad_(True)
    with relu_rule(rule) as counter:
        acts = network.extractor([info.node])(x)[info.node]
        if acts.dim() == 4:
            fmap = acts[0, channel]
            if position == "max":
                flat = int(fmap.detach().flatten().argmax())
                y, xx = divmod(flat, fmap.shape[1])
                unit, where = fmap[y, xx], (y, xx)
            else:
                unit, where = fmap.sum(), None
        elif acts.dim() == 2:
            unit, where = acts[0, channel], None
        else:
            raise DreamerError(f"{info.name} gives activations of shape {tuple(acts.shape)}; cannot pick a unit")
        (grad,) = torch.autograd.grad(unit, x)
    if rule != "gradient" and counter.calls == 0:
        raise DreamerError(
            f"the {rule} rule did not apply: this network calls no torch.nn.functional.relu "
            f"(nn.ReLU, nn.ReLU6 or F.relu) on the way to {info.name}",
            hint="use --rule gradient for the plain gradient",
        )
    facts = {
        "name": info.name, "node": info.node, "channel": channel, "position": where,
        "activation": float(unit.detach()), "rule": rule,
    }
    return grad.detach().float().cpu(), facts


def to_display(grad: torch.Tensor, *, percentile: float = 99.5) -> torch.Tensor:
    """A signed gradient (1,3,H,W) or (3,H,W) as a viewable (3,H,W) image in [0,1]:
    zero is mid-grey and the `percentile` of |gradient| reaches full contrast."""
    g = as_batch(grad)[0].float().cpu()
    mags = g.abs().flatten()
    k = max(1, min(mags.numel(), round(mags.numel() * percentile / 100.0)))
    scale = mags.kthvalue(k).values.clamp_min(1e-12) if mags.numel() else torch.tensor(1.0)
    return (0.5 + 0.5 * g / scale).clamp(0.0, 1.0)


def reconstruct(
    network,
    image: torch.Tensor,
    layer: str,
    *,
    rule: str = "guided",
    position: str = "max",
) -> tuple[torch.Tensor, dict]:
    """`unit_gradient` made viewable: a (3,H,W) float32 CPU image in [0,1] (see `to_display`)."""
    grad, facts = unit_gradient(network, image, layer, rule=rule, position=position)
    return to_display(grad), facts
