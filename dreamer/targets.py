"""What a dream is about, checked against a model in one place: layers, channels and classes.

`model` is anything with `resolve(layer) -> LayerInfo` and `categories` (a loaded `Network`
or a registry `ModelSpec`, so names can be checked before any weights load). Unknown layer or
class names raise UnknownNameError with the closest names; channels outside a layer's depth
and classes on a model without class names raise ConfigError. Both are usage errors (exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .classes import resolve_class
from .config import ClassTarget, LayerTarget
from .errors import ConfigError

__all__ = ["check_channels", "resolve_targets", "ResolvedTargets"]


def check_channels(info, channels: Sequence[int]) -> None:
    """ConfigError naming the first of `channels` outside layer `info`'s depth (when known)."""
    if info.channels is None:
        return
    bad = [c for c in channels if not 0 <= int(c) < info.channels]
    if bad:
        raise ConfigError("channel", bad[0], f"{info.name} has channels 0-{info.channels - 1}")


@dataclass(frozen=True)
class ResolvedTargets:
    """`layers`: (LayerInfo, LayerTarget) pairs; `classes`: (class index, ClassTarget) pairs;
    `logits`: the LayerInfo of the class scores (None without class terms)."""

    layers: tuple
    classes: tuple
    logits: object = None


def resolve_targets(
    model, layers: Sequence[LayerTarget] = (), classes: Sequence[ClassTarget] = ()
) -> ResolvedTargets:
    """Each layer and class term resolved on `model`, or the first error found."""
    resolved_layers = []
    for target in layers:
        info = model.resolve(target.layer)
        if target.channels is not None:
            check_channels(info, target.channels)
        resolved_layers.append((info, target))
    resolved_classes = []
    logits = None
    if classes:
        if not model.categories:
            raise ConfigError("class", classes[0].name, "a model with class names (e.g. googlenet)")
        logits = model.resolve("logits")
        for target in classes:
            resolved_classes.append((resolve_class(target.name, model.categories), target))
    return ResolvedTargets(tuple(resolved_layers), tuple(resolved_classes), logits)
