"""Frozen, validated configuration: what to dream and how.

Every config is a frozen dataclass validated in `__post_init__`; change one with
`dataclasses.replace`. Values are plain data (no tensors, no devices) so a
config can be printed, saved in an output's metadata and read back.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = [
    "LayerTarget",
    "ClassTarget",
    "DreamConfig",
    "PARAMS",
    "TRANSFORMS",
    "PRECISIONS",
    "parse_layer_target",
    "parse_class_target",
    "hex_rgb",
]

PARAMS = ("pixel", "fft")
TRANSFORMS = ("none", "standard", "crops")
#: Most views a render may look at per step (each one is a forward and backward pass).
MAX_VIEWS = 64
#: Largest Fourier spectrum exponent (`decay`): beyond it an image has almost no fine detail left.
MAX_DECAY = 4.0
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Largest crop side (fraction of the canvas's shorter side): above 1 a view sees the whole canvas
#: from further away, which only a canvas with an opacity channel allows (transparent around it).
MAX_CROP = 3.0
_HEX_RE = re.compile(r"#[0-9a-fA-F]{6}")  # whole strings only: fullmatch

# module paths of custom networks may start with a digit ("2", "features.10"); "@deep" names a role
# a neuron adds "@center" or "@X,Y" after its channel: mixed4c:97@center, mixed4c:97@0.25,0.5
_LAYER_RE = re.compile(
    r"^(?P<layer>@?\w[\w.]*)(?::(?P<channels>[^=@]+))?(?:@(?P<position>[^=]*))?(?:=(?P<weight>.+))?$"
)
#: A neuron's position (x, y) written ``@center``: the middle of the layer's grid.
CENTER = (0.5, 0.5)
_POSITION_ALLOWED = "center, or X,Y as fractions 0-1 of the layer's width and height (e.g. @0.25,0.5)"
_MAX_CHANNELS_LISTED = 4096
_MAX_SEED = 2**64 - 1


def _weight(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("weight", text, f"a number, as in {spec.split('=')[0]}=0.5") from None
    if not math.isfinite(value):
        raise ConfigError("weight", text, "a finite number")
    return value


def _parse_channels(text: str, spec: str) -> tuple[int, ...]:
    channels: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(
                "channels", part or text, "channel numbers like 97, 10,20,30 or 0-15",
                hint=f"in layer spec {spec!r}",
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise ConfigError("channels", part, "a range low-high with low <= high")
        if len(channels) + hi - lo + 1 > _MAX_CHANNELS_LISTED:
            raise ConfigError("channels", text, f"at most {_MAX_CHANNELS_LISTED} channels")
        channels.extend(range(lo, hi + 1))
    return tuple(dict.fromkeys(channels))


@dataclass(frozen=True)
class LayerTarget:
    """One layer term of the objective: a layer, optionally some of its channels, and a weight.

    `layer` is the user-facing name (e.g. ``mixed4c`` or an alias, or a module path for a
    custom network); names are resolved against a model only when the objective is built.
    `position` (x, y), fractions 0-1 of the layer's width and height, makes the term one
    neuron: its single channel at that place (`dreamer.objectives.neuron`).
    """

    layer: str
    channels: tuple[int, ...] | None = None
    weight: float = 1.0
    position: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.layer, str) or not self.layer:
            raise ConfigError("layer", self.layer, "a layer name such as mixed4c")
        if self.channels is not None:
            chans = tuple(int(c) for c in self.channels)
            if not chans:
                raise ConfigError("channels", self.channels, "at least one channel")
            if any(c < 0 for c in chans):
                raise ConfigError("channels", self.channels, "channel numbers >= 0")
            object.__setattr__(self, "channels", chans)
        if not isinstance(self.weight, (int, float)) or not math.isfinite(self.weight):
            raise ConfigError("weight", self.weight, "a finite number")
        object.__setattr__(self, "weight", float(self.weight))
        if self.position is not None:
            _check_position(self.position, self)

    def __str__(self) -> str:
        text = self.layer
        if self.channels is not None:
            text += ":" + _format_channels(self.channels)
        if self.position is not None:
            x, y = self.position
            text += "@center" if self.position == CENTER else f"@{x:g},{y:g}"
        if self.weight != 1.0:
            text += f"={self.weight:g}"
        return text


def _format_channels(channels: tuple[int, ...]) -> str:
    parts: list[str] = []
    start = prev = channels[0]
    for c in channels[1:] + (None,):  # type: ignore[operator]
        if c is not None and c == prev + 1:
            prev = c
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if c is not None:
            start = prev = c
    return ",".join(parts)


def _check_position(position: object, target: LayerTarget) -> None:
    ok = isinstance(position, tuple) and len(position) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0.0 <= v <= 1.0
        for v in position
    )
    if not ok:
        raise ConfigError("position", position, _POSITION_ALLOWED)
    if target.channels is None or len(target.channels) != 1:
        chans = "no channel" if target.channels is None else f"{len(target.channels)} channels"
        shown = target.layer + (":" + _format_channels(target.channels) if target.channels else "")
        shown += "@center" if tuple(position) == CENTER else "@{:g},{:g}".format(*position)  # type: ignore[arg-type]
        raise ConfigError(
            "neuron", shown, f"one channel at one position, e.g. {target.layer}:97@center; {chans} given"
        )
    object.__setattr__(target, "position", (float(position[0]), float(position[1])))  # type: ignore[index]


def _parse_position(text: str, spec: str) -> tuple[float, float]:
    word = text.strip().lower()
    if word in ("center", "centre"):
        return CENTER
    parts = word.split(",")
    try:
        x, y = (float(p) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        x = y = None
    if x is None or y is None or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (x, y)):
        raise ConfigError("position", text, _POSITION_ALLOWED, hint=f"in layer spec {spec!r}")
    return (x, y)


def parse_layer_target(spec: str) -> LayerTarget:
    """Parse ``mixed4c``, ``mixed4c:97``, ``mixed4c:10,20,30``, ``mixed4c:0-15``, ``mixed5a=0.5``,
    or a neuron: ``mixed4c:97@center``, ``mixed4c:97@0.25,0.5`` (x, y as fractions 0-1)."""
    m = _LAYER_RE.match(spec.strip())
    if not m:
        raise ConfigError(
            "layer", spec,
            "NAME, NAME:CHANNELS, NAME=WEIGHT or NAME:CHANNEL@center, e.g. mixed4c, mixed4c:97, mixed5a=0.5",
        )
    channels = _parse_channels(m.group("channels"), spec) if m.group("channels") else None
    weight = _weight(m.group("weight"), spec) if m.group("weight") else 1.0
    position = _parse_position(m.group("position"), spec) if m.group("position") is not None else None
    return LayerTarget(m.group("layer"), channels, weight, position)


@dataclass(frozen=True)
class ClassTarget:
    """A class-logit term of the objective: an ImageNet class name or index, and a weight."""

    name: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.name, int):
            object.__setattr__(self, "name", str(self.name))
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("class", self.name, "an ImageNet class name or index 0-999")
        if not isinstance(self.weight, (int, float)) or not math.isfinite(self.weight):
            raise ConfigError("weight", self.weight, "a finite number")
        object.__setattr__(self, "weight", float(self.weight))

    def __str__(self) -> str:
        return self.name if self.weight == 1.0 else f"{self.name}={self.weight:g}"


def parse_class_target(spec: str) -> ClassTarget:
    """Parse ``banana``, ``954``, ``banana=0.5`` (the last ``=`` separates the weight)."""
    name, sep, weight = spec.rpartition("=")
    if sep and name.strip():
        try:
            return ClassTarget(name.strip(), float(weight))
        except ValueError:
            pass
    return ClassTarget(spec.strip())


def _check_int(name: str, value: Any, low: int, allowed: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(name, value, allowed)


def _check_float(name: str, value: Any, allowed: str, *, low: float, strict: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > low if strict else value >= low
    if not ok:
        raise ConfigError(name, value, allowed)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(name, value, "one of " + ", ".join(choices))


def _check_crop(value: Any) -> None:
    allowed = (
        "two fractions [low, high] of the canvas side with 0 < low <= high <= 1, e.g. [0.5, 1.0] "
        f"(with an opacity channel high may reach {MAX_CROP:g}: views from further away)"
    )
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok or not 0.0 < value[0] <= value[1] <= MAX_CROP:
        raise ConfigError("crop", list(value) if isinstance(value, tuple) else value, allowed)


def _check_backdrop(value: Any) -> tuple[str, ...]:
    """The backdrop as a tuple of 0-2 lowercase "#rrggbb" colours; "A,B" text is split."""
    allowed = 'one or two colours "#rrggbb" (two: a gradient from top to bottom), or none'
    # text (a flag) may say "none" or list the colours with a comma
    colours = value
    if isinstance(colours, str):
        text = colours.strip()
        colours = [c.strip() for c in text.split(",")] if text and text.lower() != "none" else []
    if not isinstance(colours, (tuple, list)) or len(colours) > 2:
        raise ConfigError("backdrop", list(value) if isinstance(value, tuple) else value, allowed)
    for c in colours:
        if not isinstance(c, str) or not _HEX_RE.fullmatch(c):
            raise ConfigError("backdrop", c, allowed, hint='e.g. "#5985bf,#8cb8f2" (a sky)')
    return tuple(c.lower() for c in colours)


def hex_rgb(colour: str) -> tuple[float, float, float]:
    """ "#rrggbb" -> (r, g, b) in [0, 1]."""
    if not isinstance(colour, str) or not _HEX_RE.fullmatch(colour):
        raise ValueError(f"expected a colour '#rrggbb', got {colour!r}")
    return tuple(int(colour[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


@dataclass(frozen=True)
class DreamConfig:
    """Everything that decides what a dream looks like, given the model and the start image.

    Classic defaults (Mordvintsev et al., 2015): layer mixed4c, 4 octaves of scale 1.4,
    10 steps per octave, step 1.5 (in 0-255 pixel units: the mean absolute change of a
    step), jitter 32 px.

    - ``param`` picks the loop: ``pixel`` is the classic gradient ascent on pixels with octaves
      (`dreamer.loops.deepdream`); ``fft`` grows the image in a decorrelated-colour Fourier
      parameterisation with Adam (`dreamer.loops.render`: feature visualisation, best from noise).
    - ``transforms``: random changes the image must survive each step: ``none`` (just the
      roll of ``jitter`` pixels), ``standard`` (roll, then a random scale in 0.9-1.1 and
      rotation in ±10 degrees, then a roll of up to ``jitter // 4``; the same table in both loops,
      `dreamer.transforms.STANDARD_SCALES`/`STANDARD_ANGLES`), ``crops`` (render loop only:
      after the roll, random square crops of ``crop`` times the canvas's shorter side, rotated,
      mirrored, resampled to the network's input size, plus pixel noise:
      `dreamer.transforms.RandomCrops`).
    - ``views``: how many independently transformed copies of each image a render step looks
      at; the loss is their mean (more views, steadier steps, ``views`` times the work).
    - ``decay``: the Fourier image's spectrum falls as 1/frequency**decay (fft): larger values
      favour coarse structure.
    - ``tv_weight``: total-variation penalty; ``blur``: Gaussian sigma (px) applied to the
      gradient, both suppress high-frequency noise. ``grey_weight``: penalty on the mean squared
      distance of the image from mid-grey (tames burnt-out colours).
    - ``opacity_cost`` > 0 (fft, transforms crops) gives the image an opacity channel: every view
      is laid over a random background and the mean opacity costs this much (in units of the
      objective), more towards the corners; what does not serve the objective fades to the grey
      background, so an object stands alone (`dreamer.loops.render`). With it, ``crop`` may go
      above 1 (up to `MAX_CROP`): such a view sees the whole canvas small, transparent around
      it, so the object must read from afar too (one object, not a canvas of its parts).
    - ``backdrop`` (with ``opacity_cost``): one or two colours ``"#rrggbb"`` (two: a gradient from
      top to bottom) the views lay the image over instead of random backgrounds (each view's
      shifted a little, `dreamer.transforms.BACKDROP_JITTER`) and the result is laid over instead
      of grey: the setting a class is read from (a sky for a parachute) is given, and the
      opacity is spent on the object.
    - ``precision`` and ``tile`` decide how gradients are computed (`dreamer.backend`), in both
      loops: ``tile`` splits big images for objectives that are means over positions (layers).

    Fields only one loop reads: ``octaves``, ``octave_scale`` and ``step_size`` (pixel);
    ``learning_rate``, ``decorrelate``, ``decay``, ``views``, ``crop``, ``grey_weight``,
    ``opacity_cost`` and ``backdrop`` (fft). Everything else is used by both.
    """

    model: str = "googlenet"
    layers: tuple[LayerTarget, ...] = (LayerTarget("mixed4c"),)
    classes: tuple[ClassTarget, ...] = ()
    octaves: int = 4
    octave_scale: float = 1.4
    steps: int = 10
    step_size: float = 1.5
    jitter: int = 32
    param: str = "pixel"
    decorrelate: bool = True
    transforms: str = "none"
    learning_rate: float = 0.05
    views: int = 1
    crop: tuple[float, float] = (0.5, 1.0)
    decay: float = 1.0
    tv_weight: float = 0.0
    blur: float = 0.0
    grey_weight: float = 0.0
    opacity_cost: float = 0.0
    backdrop: tuple[str, ...] = ()
    precision: str = "auto"
    tile: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        layers = self.layers
        classes = self.classes
        # one term given alone (a str or a target) is one term, not a sequence of letters
        if isinstance(layers, (str, LayerTarget)):
            layers = (layers,)
        if isinstance(classes, (str, int, ClassTarget)) and not isinstance(classes, bool):
            classes = (classes,)
        if not isinstance(layers, (tuple, list)):
            raise ConfigError("layers", layers, "a layer spec or a list of them, e.g. ['mixed4c', 'mixed5a=0.5']")
        if not isinstance(classes, (tuple, list)):
            raise ConfigError("classes", classes, "a class or a list of them, e.g. ['banana', '954=0.5']")
        layers = tuple(parse_layer_target(t) if isinstance(t, str) else t for t in layers)
        classes = tuple(
            parse_class_target(str(t)) if isinstance(t, (str, int)) and not isinstance(t, bool) else t for t in classes
        )
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "classes", classes)
        if not layers and not classes:
            raise ConfigError("layers", (), "at least one layer or class to dream about")
        for t in layers:
            if not isinstance(t, LayerTarget):
                raise ConfigError("layers", t, "layer specs such as 'mixed4c:97=0.5'")
        for t in classes:
            if not isinstance(t, ClassTarget):
                raise ConfigError("classes", t, "class specs such as 'banana' or '954=0.5'")
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError("model", self.model, "a model name such as googlenet")
        _check_int("octaves", self.octaves, 1, "an integer >= 1")
        _check_float("octave_scale", self.octave_scale, "a number > 1", low=1.0, strict=True)
        _check_int("steps", self.steps, 1, "an integer >= 1")
        _check_float("step_size", self.step_size, "a number > 0", low=0.0, strict=True)
        _check_int("jitter", self.jitter, 0, "an integer >= 0 (pixels)")
        _check_choice("param", self.param, PARAMS)
        if not isinstance(self.decorrelate, bool):
            raise ConfigError("decorrelate", self.decorrelate, "true or false")
        _check_choice("transforms", self.transforms, TRANSFORMS)
        if self.transforms == "crops" and self.param != "fft":
            raise ConfigError(
                "transforms", "crops", "none or standard; crops need param fft (the render loop)"
            )
        _check_float("learning_rate", self.learning_rate, "a number > 0", low=0.0, strict=True)
        _check_int("views", self.views, 1, f"an integer from 1 to {MAX_VIEWS}")
        if self.views > MAX_VIEWS:
            raise ConfigError("views", self.views, f"an integer from 1 to {MAX_VIEWS}")
        _check_crop(self.crop)
        object.__setattr__(self, "crop", (float(self.crop[0]), float(self.crop[1])))
        _check_float("decay", self.decay, f"a number from 0 to {MAX_DECAY:g}", low=0.0, strict=False)
        if self.decay > MAX_DECAY:
            raise ConfigError("decay", self.decay, f"a number from 0 to {MAX_DECAY:g}")
        _check_float("tv_weight", self.tv_weight, "a number >= 0", low=0.0, strict=False)
        _check_float("blur", self.blur, "a number >= 0 (Gaussian sigma in pixels)", low=0.0, strict=False)
        _check_float("grey_weight", self.grey_weight, "a number >= 0", low=0.0, strict=False)
        _check_float("opacity_cost", self.opacity_cost, "a number >= 0 (0: no opacity channel)", low=0.0, strict=False)
        if self.opacity_cost > 0 and self.transforms != "crops":
            raise ConfigError(
                "opacity_cost", self.opacity_cost, "0 unless transforms is crops (the views lay the image over backgrounds)",
                hint="with other transforms, also set the opacity to 0 (--opacity 0)",
            )
        if self.crop[1] > 1.0 and self.opacity_cost == 0:
            raise ConfigError(
                "crop", list(self.crop), "a high end <= 1 unless opacity_cost > 0 (only a canvas with an opacity "
                "channel can be seen whole from further away)",
                hint="give the opacity a price too (e.g. --opacity 8), or keep crops within the canvas (e.g. --crop 0.5,1.0)",
            )
        object.__setattr__(self, "backdrop", _check_backdrop(self.backdrop))
        if self.backdrop and self.opacity_cost == 0:
            raise ConfigError(
                "backdrop", ",".join(self.backdrop),
                "none unless opacity_cost > 0 (the backdrop shows where the image is clear)",
                hint="give the opacity a price too (e.g. --opacity 8 --transforms crops --param fft)",
            )
        _check_choice("precision", self.precision, PRECISIONS)
        if self.tile is not None:
            _check_int("tile", self.tile, 64, "an integer >= 64 (pixels), or unset for automatic")
        _check_int("seed", self.seed, 0, "an integer >= 0")
        if self.seed > _MAX_SEED:  # torch.Generator.manual_seed's limit
            raise ConfigError("seed", self.seed, f"an integer from 0 to {_MAX_SEED}")

    def classic(self, **changes: Any) -> DreamConfig:
        """This config for the classic loop (``param = "pixel"``), e.g. for zoom and video frames,
        which are dreamed on rather than grown: what only the render loop can do is replaced by
        its classic counterpart (``crops`` transforms by ``standard``, no opacity, no backdrop,
        crops within the canvas); the objective is kept. `changes` are applied too."""
        transforms = "standard" if self.transforms == "crops" else self.transforms
        classic = {"param": "pixel", "transforms": transforms, **self._opaque()}
        return self.replace(**{**classic, **changes})

    def _opaque(self) -> dict[str, Any]:
        """The changes that turn the opacity channel off: no price, no backdrop, and crops cut
        to the canvas (a view past it would see nothing)."""
        return {"opacity_cost": 0.0, "backdrop": (), "crop": (min(self.crop[0], 1.0), min(self.crop[1], 1.0))}

    def replace(self, **changes: Any) -> DreamConfig:
        """A copy with some fields changed (validated again), exactly as given."""
        return dataclasses.replace(self, **changes)

    def override(self, **changes: Any) -> DreamConfig:
        """A copy with the settings a user gave on top of this one (a default or a preset).

        Like `replace`, except for the objective: naming only ``layers`` drops the classes and
        naming only ``classes`` drops the layers, so ``override(classes=["banana"])`` grows a
        banana, not a banana on top of the default layer; and turning the opacity off
        (``opacity_cost=0``) also drops what only an opacity channel allows, unless given too:
        the ``backdrop``, and ``crop`` above 1 (cut to 1), so ``--opacity 0`` works on any preset.
        The CLI's flags, presets and the Python API all resolve this way.
        """
        changes = dict(changes)
        if changes.get("opacity_cost") == 0 and self.opacity_cost > 0:
            changes = {**self._opaque(), **changes}
        if "classes" in changes and "layers" not in changes:
            changes["layers"] = ()
        if "layers" in changes and "classes" not in changes:
            changes["classes"] = ()
        return self.replace(**changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        """Plain data (layers and classes as their text specs), e.g. for metadata or TOML."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("layers", "classes"):
                value = [str(t) for t in value]
            elif f.name in ("crop", "backdrop"):
                value = list(value)  # as JSON and TOML read it back
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DreamConfig:
        """Inverse of `to_dict`; unknown keys are a ConfigError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in names]
        if unknown:
            from .errors import closest

            key = unknown[0]
            near = closest(key, names)
            raise ConfigError("key", key, "a DreamConfig field", hint=f"did you mean {near[0]!r}?" if near else None)
        data = dict(data)
        for key in ("layers", "classes"):
            if key in data and isinstance(data[key], (list, tuple)):
                data[key] = tuple(data[key])
        return cls(**data)


