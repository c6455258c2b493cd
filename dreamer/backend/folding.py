"""BatchNorm folding: a copy of a network in which each BatchNorm2d that follows a Conv2d is
merged into that convolution (`torch.nn.utils.fusion.fuse_conv_bn_eval`), so a forward pass runs
one operation where it ran two. Valid in eval mode only (running statistics), which is how
networks are dreamed; outputs agree with the original to float rounding."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch.fx
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["conv_bn_pairs", "fold_batchnorm"]


def _trace(module: nn.Module) -> torch.fx.GraphModule | None:
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
        if not any(isinstance(m, nn.BatchNorm2d) for m in mod.modules()):
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


def _set(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent_path) if parent_path else root, name, module)


def fold_batchnorm(module: nn.Module, *, protected: Sequence[str] = ()) -> tuple[nn.Module, int]:
    """(a copy of `module` in eval mode with its BatchNorms folded, how many were folded).

    Each folded BatchNorm is replaced by `nn.Identity`, so module paths and forward code are
    unchanged. `module` itself is never modified.
    """
    target = copy.deepcopy(module).eval()
    pairs = conv_bn_pairs(target, protected=protected)
    for conv_path, bn_path in pairs:
        _set(target, conv_path, fuse_conv_bn_eval(target.get_submodule(conv_path), target.get_submodule(bn_path)))
        _set(target, bn_path, nn.Identity())
    return target, len(pairs)
