"""Objectives: what a dream maximises, as values that compose.

An objective maps the activations of a forward pass ({node: tensor}) to one score per
image, shape (B,). Objectives add, subtract and scale:
``0.5 * channel("inception4a", 97) + layer_l2("inception4c")``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence

import torch

from .classes import resolve_class  # re-exported: it lives in dreamer.classes
from .config import ClassTarget, ConfigError, LayerTarget

__all__ = ["Objective", "layer_l2", "channel", "class_logit", "build_objective", "resolve_class"]

Activations = Mapping[str, torch.Tensor]


class Objective:
    """A per-image score of activations. `nodes` are the network nodes it reads.

    `key` says what it computes, as hashable data (the built-in objectives and their sums and
    multiples have one); two objectives with equal keys compute the same thing, so prepared
    gradient functions can be reused between calls. Without a key an objective is only equal
    to itself.
    """

    def __init__(
        self, fn: Callable[[Activations], torch.Tensor], nodes: Sequence[str], name: str, *, key: Hashable = None
    ) -> None:
        self._fn = fn
        self.nodes = tuple(dict.fromkeys(nodes))
        self.name = name
        self.key = key if key is not None else ("id", id(self))

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self._fn(acts)

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, (int, float)):
            return Objective(
                lambda a: self(a) + other, self.nodes, f"{self.name} + {other:g}", key=("add", self.key, float(other))
            )
        return Objective(
            lambda a: self(a) + other(a), self.nodes + other.nodes, f"{self.name} + {other.name}",
            key=("add", self.key, other.key),
        )

    def __radd__(self, other: float) -> Objective:
        # lets sum([...]) start from 0
        return self if other == 0 else self + other

    def __mul__(self, k: float) -> Objective:
        return Objective(lambda a: k * self(a), self.nodes, f"{k:g} * {self.name}", key=("mul", float(k), self.key))

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __sub__(self, other: Objective) -> Objective:
        return self + (-other)

    def __repr__(self) -> str:
        return f"Objective({self.name})"


@functools.lru_cache(maxsize=64)
def _channel_index(channels: tuple[int, ...], device: torch.device) -> torch.Tensor:
    # made once per device: no host-to-device copy inside the step loop (or a CUDA graph)
    return torch.tensor(channels, dtype=torch.long, device=device)


def layer_l2(node: str, channels: Sequence[int] | None = None) -> Objective:
    """Mean of squared activations of `node` (over the chosen channels, or all) per image.

    The classic DeepDream objective: its gradient amplifies whatever the layer already sees.
    """
    chosen = None if channels is None else tuple(int(c) for c in channels)
    top = None if chosen is None else max(chosen)

    def fn(acts: Activations) -> torch.Tensor:
        a = acts[node]
        if chosen is not None:
            if top >= a.shape[1]:  # custom networks: channel counts are known only now
                raise ConfigError("channel", top, f"{node} has channels 0-{a.shape[1] - 1}")
            a = a.index_select(1, _channel_index(chosen, a.device))
        return a.float().pow(2).flatten(1).mean(1)

    label = node if channels is None else f"{node}:{','.join(map(str, channels))}"
    return Objective(fn, [node], f"l2({label})", key=("l2", node, chosen))


def channel(node: str, index: int) -> Objective:
    """Mean activation of one channel of `node` per image (Lucid's channel objective)."""

    def fn(acts: Activations) -> torch.Tensor:
        a = acts[node]
        if not -a.shape[1] <= index < a.shape[1]:
            raise ConfigError("channel", index, f"{node} has channels 0-{a.shape[1] - 1}")
        return a[:, index].float().flatten(1).mean(1)

    return Objective(fn, [node], f"channel({node}:{index})", key=("channel", node, int(index)))


def class_logit(index: int, node: str = "fc") -> Objective:
    """The logit (pre-softmax score) of class `index` per image."""

    def fn(acts: Activations) -> torch.Tensor:
        return acts[node][:, index].float()

    return Objective(fn, [node], f"logit({index})", key=("logit", node, int(index)))


def build_objective(
    network,
    layers: Sequence[LayerTarget] = (),
    classes: Sequence[ClassTarget] = (),
) -> Objective:
    """The objective of a config's layer and class terms on `network`.

    Each layer term is averaged on its own (so layers of different sizes weigh alike), then
    terms are summed with their weights. Names and channel numbers are checked here.
    """
    terms: list[Objective] = []
    for target in layers:
        info = network.resolve(target.layer)
        if target.channels is not None and info.channels is not None:
            bad = [c for c in target.channels if c >= info.channels]
            if bad:
                raise ConfigError(
                    "channel", bad[0], f"{info.name} has channels 0-{info.channels - 1}"
                )
        terms.append(target.weight * layer_l2(info.node, target.channels))
    if classes:
        if not network.categories:
            raise ConfigError("class", classes[0].name, "a model with class names (e.g. googlenet)")
        logits = network.resolve("logits")
        for target in classes:
            index = resolve_class(target.name, network.categories)
            terms.append(target.weight * class_logit(index, logits.node))
    if not terms:
        raise ConfigError("objective", "", "at least one layer or class")
    return sum(terms)  # type: ignore[return-value]
