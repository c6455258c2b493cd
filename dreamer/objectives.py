"""Objectives: what a dream maximises, as values that compose.

An objective maps the activations of a forward pass ({node: tensor}) to one score per
image, shape (B,). Objectives add, subtract and scale by numbers:
``0.5 * channel("inception4a", 97) + layer_l2("inception4c")``. A sum keeps its terms in a
flat list and is evaluated with a loop, so thousands of terms work. The product of two
objectives is not defined (a TypeError says so): it would not be a mean over positions, and
nothing in dreamer needs it.

Each objective says whether it is `tileable`: its score is a mean over the spatial positions
of one node's activations of a per-position value, so the score of a whole image equals the
position-weighted sum of the scores of tiles that partition the activations (`layer_l2` and
`channel` are; a maximum, the square of a mean, a class logit or an arbitrary function are
not). Weighted sums of tileable objectives are tileable.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Hashable, Mapping, Sequence

import torch

from .classes import resolve_class  # re-exported: it lives in dreamer.classes
from .config import ClassTarget, ConfigError, LayerTarget
from .targets import resolve_targets

__all__ = ["Objective", "Sum", "layer_l2", "channel", "class_logit", "build_objective", "resolve_class"]

Activations = Mapping[str, torch.Tensor]


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _product_error(a: object, b: object) -> TypeError:
    return TypeError(
        f"cannot multiply {a!r} by {b!r}: an objective can be scaled by a number "
        "(0.5 * layer_l2(...)), but the product of two objectives is not defined"
    )


class Objective:
    """A per-image score of activations, shape (B,). `nodes` are the network nodes it reads.

    `key` says what it computes, as hashable data (the built-in objectives and their sums and
    multiples have one); two objectives with equal keys compute the same thing, so prepared
    gradient functions can be reused between calls. Without a key an objective is only equal
    to itself.

    `tileable=True` promises that the score is a mean over the spatial positions of the one
    node in `nodes` of a value computed at each position alone (see the module docstring);
    tiling uses it, so a wrong promise gives wrong gradients. Custom objectives default to False.
    """

    def __init__(
        self,
        fn: Callable[[Activations], torch.Tensor],
        nodes: Sequence[str],
        name: str,
        *,
        key: Hashable = None,
        tileable: bool = False,
    ) -> None:
        self._fn = fn
        self.nodes = tuple(dict.fromkeys(nodes))
        if tileable and len(self.nodes) != 1:
            raise ValueError(f"a tileable objective reads exactly one node, not {self.nodes}")
        self._name = name
        self.key = key if key is not None else ("id", id(self))
        self.tileable = bool(tileable)

    @property
    def name(self) -> str:
        return self._name

    @property
    def terms(self) -> tuple[tuple[float, Objective], ...]:
        """(weight, objective) pairs whose weighted sum plus `offset` is this objective; none of
        the objectives is itself a sum."""
        return ((1.0, self),)

    @property
    def offset(self) -> float:
        return 0.0

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self._fn(acts)

    # -- arithmetic: every result is a flat Sum ------------------------------------------------

    def __add__(self, other: Objective | float) -> Objective:
        if _is_number(other):
            return Sum(self.terms, self.offset + float(other))
        if isinstance(other, Objective):
            return Sum(self.terms + other.terms, self.offset + other.offset)
        return NotImplemented

    def __radd__(self, other: float) -> Objective:
        if _is_number(other):
            # lets sum([...]) start from 0
            return self if other == 0 else self + other
        return NotImplemented

    def __mul__(self, k: float) -> Objective:
        if isinstance(k, Objective):
            raise _product_error(self, k)
        if not _is_number(k):
            return NotImplemented
        k = float(k)
        return Sum(tuple((k * w, t) for w, t in self.terms), k * self.offset)

    def __rmul__(self, k: float) -> Objective:
        return self.__mul__(k)

    def __truediv__(self, k: float) -> Objective:
        if isinstance(k, Objective):
            raise TypeError(f"cannot divide {self!r} by {k!r}: an objective can be divided by a number only")
        if not _is_number(k):
            return NotImplemented
        return self * (1.0 / float(k))

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __sub__(self, other: Objective | float) -> Objective:
        if not (_is_number(other) or isinstance(other, Objective)):
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other: float) -> Objective:
        if not _is_number(other):
            return NotImplemented
        return (-self) + other

    def __repr__(self) -> str:
        return f"Objective({self.name})"


class Sum(Objective):
    """offset + sum of weight * term, evaluated in a loop (no recursion, however many terms).

    Built by the arithmetic of `Objective`; its terms are never sums themselves."""

    def __init__(self, terms: Sequence[tuple[float, Objective]], offset: float = 0.0) -> None:
        self._terms = tuple((float(w), t) for w, t in terms)
        self._offset = float(offset)
        self.nodes = tuple(dict.fromkeys(n for _, t in self._terms for n in t.nodes))
        self.key = ("sum", tuple((w, t.key) for w, t in self._terms), self._offset)
        self.tileable = bool(self._terms) and all(t.tileable for _, t in self._terms)

    @property
    def terms(self) -> tuple[tuple[float, Objective], ...]:
        return self._terms

    @property
    def offset(self) -> float:
        return self._offset

    @property
    def name(self) -> str:
        parts = []
        for w, t in self._terms:
            text = t.name if w == 1.0 else f"{w:g} * {t.name}"
            parts.append(text if not parts else ("- " + text[1:] if text.startswith("-") else "+ " + text))
        if self._offset or not parts:
            parts.append(f"{self._offset:g}" if not parts else f"{'-' if self._offset < 0 else '+'} {abs(self._offset):g}")
        return " ".join(parts)

    def __call__(self, acts: Activations) -> torch.Tensor:
        total = None
        for w, t in self._terms:
            value = t(acts)
            value = value if w == 1.0 else w * value
            total = value if total is None else total + value
        if total is None:
            raise ValueError("an empty sum of objectives has no batch size")
        return total + self._offset if self._offset else total


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
    return Objective(fn, [node], f"l2({label})", key=("l2", node, chosen), tileable=True)


def channel(node: str, index: int) -> Objective:
    """Mean activation of one channel of `node` per image (Lucid's channel objective)."""

    def fn(acts: Activations) -> torch.Tensor:
        a = acts[node]
        if not -a.shape[1] <= index < a.shape[1]:
            raise ConfigError("channel", index, f"{node} has channels 0-{a.shape[1] - 1}")
        return a[:, index].float().flatten(1).mean(1)

    return Objective(fn, [node], f"channel({node}:{index})", key=("channel", node, int(index)), tileable=True)


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
    terms are summed with their weights. Names and channel numbers are checked by
    `dreamer.targets.resolve_targets`.
    """
    resolved = resolve_targets(network, layers, classes)
    terms: list[Objective] = [
        t.weight * (layer_l2(info.node, t.channels) if t.position is None else neuron(info.node, t.channels[0], *t.position))
        for info, t in resolved.layers
    ]
    terms += [t.weight * class_logit(index, resolved.logits.node) for index, t in resolved.classes]
    if not terms:
        raise ConfigError("objective", "", "at least one layer or class")
    return sum(terms)  # type: ignore[return-value]


# --- steering objectives: neuron, guide, diversity (issue 14) --------------------------------
# Appended section, kept apart from the core above: each is an ordinary Objective and composes
# with the others (`neuron(...) - 0.5 * diversity(...)`).

__all__ += ["neuron", "guide", "diversity", "NEURON_CENTER"]

#: The position (x, y) of `neuron`'s default unit: the centre, as fractions of width and height.
NEURON_CENTER = (0.5, 0.5)

# how many (position, guide feature) dot products `guide` forms at once: bounds its memory
_GUIDE_CHUNK = 1 << 22


class _DenseGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient. The backward of einsum/bmm yields
    gradients strided like channels_last but with an odd batch stride when the batch is 1, and
    CPU BatchNorm (eval) backward computes a wrong input gradient from those (torch 2.14)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad.contiguous()


def _grid_index(fraction: float, length: int) -> int:
    # fraction 0..1 of the grid -> cell; 0.5 gives length // 2 (the centre, as Lucid picks it)
    return min(int(fraction * length), length - 1)


def neuron(node: str, index: int, x: float = NEURON_CENTER[0], y: float = NEURON_CENTER[1]) -> Objective:
    """The activation of one unit per image: channel `index` of `node` at one spatial position.

    The position is given as fractions of the layer's width (`x`) and height (`y`), 0 to 1, so
    it names the same place in the picture at every octave size; the default (0.5, 0.5) is the
    centre cell (``w // 2, h // 2``). Only that unit's receptive field gets a gradient. Not
    tileable (it is one position, not a mean over positions).
    """
    index = int(index)
    for name, value in (("x", x), ("y", y)):
        if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError("position", value, f"{name} as a fraction 0-1 of the layer's size")
    x, y = float(x), float(y)

    def fn(acts: Activations) -> torch.Tensor:
        a = acts[node]
        if a.dim() != 4:
            raise ConfigError("layer", node, "a layer with a spatial grid (not the class scores) for a neuron")
        if not 0 <= index < a.shape[1]:
            raise ConfigError("channel", index, f"{node} has channels 0-{a.shape[1] - 1}")
        h, w = a.shape[-2:]
        return a[:, index, _grid_index(y, h), _grid_index(x, w)].float()

    where = "center" if (x, y) == NEURON_CENTER else f"{x:g},{y:g}"
    return Objective(fn, [node], f"neuron({node}:{index}@{where})", key=("neuron", node, index, x, y))


def _digest(t: torch.Tensor) -> str:
    import hashlib

    data = t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha1(data + repr(tuple(t.shape)).encode()).hexdigest()


def guide(node: str, features: torch.Tensor, channels: Sequence[int] | None = None) -> Objective:
    """The guided objective: each position of `node` is pushed towards the guide feature vector
    it matches best.

    `features`: (C, N) float tensor, the guide image's activation vectors at `node` for its N
    positions (see `dreamer.steer.guide_features`), any device. Score per image: the mean over
    the positions x of ``max_j <a_x, g_j> / C`` (C channels, or the chosen `channels`), so its
    gradient at each position is the best-matching guide vector, and its scale is that of
    `layer_l2` on the same layer. Tileable: each position's value depends on it alone.
    """
    if features.dim() != 2 or features.shape[1] < 1:
        raise ValueError(f"guide features must be (C, N), got {tuple(features.shape)}")
    chosen = None if channels is None else tuple(int(c) for c in channels)
    base = features.detach().float()
    if chosen is not None:
        if max(chosen) >= base.shape[0]:
            raise ConfigError("channel", max(chosen), f"{node} has channels 0-{base.shape[0] - 1}")
        base = base[list(chosen)]
    base = base.contiguous()
    depth = base.shape[0]
    on_device: dict[torch.device, torch.Tensor] = {}

    def fn(acts: Activations) -> torch.Tensor:
        a = acts[node]
        if chosen is not None:
            a = a.index_select(1, _channel_index(chosen, a.device))
        if a.dim() != 4 or a.shape[1] != depth:
            raise ConfigError("layer", node, f"the layer the guide's features were taken at ({depth} channels)")
        g = on_device.get(a.device)
        if g is None:
            g = on_device[a.device] = base.to(a.device)
        flat = _DenseGrad.apply(a.float()).flatten(2)  # (B, C, P)
        batch, _, positions = flat.shape
        chunk = max(1, _GUIDE_CHUNK // max(1, batch * g.shape[1]))
        best = [
            torch.einsum("bcp,cn->bpn", flat[:, :, lo : lo + chunk], g).amax(dim=2)
            for lo in range(0, positions, chunk)
        ]
        return torch.cat(best, dim=1).mean(1) / depth

    label = node if chosen is None else f"{node}:{','.join(map(str, chosen))}"
    key = ("guide", node, chosen, _digest(base))
    return Objective(fn, [node], f"guide({label})", key=key, tileable=True)


def diversity(node: str) -> Objective:
    """Lucid's diversity term: how different each image's Gram matrix at `node` is from the
    others' in the batch.

    Per image i: minus the mean cosine similarity of its (C, C) Gram matrix (channel
    correlations over positions: style, not layout) with those of the other images. Scores are
    in [-1, 1] (in [-1, 0] after a ReLU, whose Gram matrices are non-negative); adding
    ``w * diversity(node)`` to an objective pushes a batch's images apart. Needs a batch of at
    least two images: with one there is nothing to differ from (ConfigError).
    """

    def fn(acts: Activations) -> torch.Tensor:
        a = acts[node]
        if a.dim() != 4:
            raise ConfigError("layer", node, "a layer with a spatial grid (not the class scores) for diversity")
        batch = a.shape[0]
        if batch < 2:
            raise ConfigError("batch", batch, "at least 2 images: diversity compares the images of a batch")
        flat = _DenseGrad.apply(a.float()).flatten(2)
        gram = torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[2]  # (B, C, C)
        gram = torch.nn.functional.normalize(gram.flatten(1), dim=1, eps=1e-10)
        similarity = gram @ gram.T  # (B, B)
        others = similarity.sum(1) - similarity.diagonal()
        return -others / (batch - 1)

    return Objective(fn, [node], f"diversity({node})", key=("diversity", node))
