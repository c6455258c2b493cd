"""Steering a dream: guide images, masks, kept colours, single neurons and diverse batches.

`Controls` holds what steers a dream besides its `DreamConfig` (which stays plain data):
loaded guide images, a mask, whether to keep the input's colours, and a diversity term.
`dream` builds the objective from both, runs the loop the config asks for
(`dreamer.loops.run_config`: the classic octave loop, or the render loop for ``param="fft"``)
and finishes the result:

- guides (`Guide`): at each layer term of the config, the plain amplification (`layer_l2`) is
  replaced by `objectives.guide` with the guide image's features at that layer, so every
  position grows what it best matches in the guide. The features are computed once per guide,
  network and layer, from the guide scaled to the network's training size (`Guide.size`;
  224 px on its longest side for the bundled models). Class terms are kept and add to it.
- neurons: a layer term with a position (``block3:5@center``, see `dreamer.config`) becomes
  `objectives.neuron`.
- diversity (`Diversity`): ``weight * objectives.diversity(layer)`` is added, at the first
  layer term's layer (or the model's middle layer, ``@middle``, when there are only class terms).
- keep_colors: the result's luminance under the input's chroma (`dreamer.colors.keep_colors`).
- mask: the result composited over the input (`dreamer.masks.composite`): black pixels come
  back bit-identical. Colours are kept first, so the mask has the last word.

Pure like the loops: never prints, never touches files (loading a guide or mask file is done by
`Guide.load` and `dreamer.masks.load_mask`, called by the CLI or the caller).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .config import DreamConfig
from .errors import ConfigError, UsageError

__all__ = [
    "Guide",
    "Diversity",
    "Controls",
    "parse_guide",
    "parse_diversity",
    "guide_features",
    "steered_objective",
    "check_batch",
    "check_controls",
    "finish",
    "dream",
    "controls_from",
    "steered_loop",
    "DIVERSITY_ROLE",
]

#: The layer the diversity term compares at when the objective has no layer terms.
DIVERSITY_ROLE = "@middle"
# guides larger than this many feature positions are pooled down (memory of the best-match search)
_MAX_GUIDE_POSITIONS = 4096


def _weight(text: str, what: str, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(what, text, f"a number, as in {example}") from None
    if not math.isfinite(value):
        raise ConfigError(what, text, "a finite number")
    return value


def parse_guide(spec: str) -> tuple[str, float]:
    """``IMAGE`` or ``IMAGE=W`` -> (path, weight). A path that exists as given wins, so file
    names containing ``=`` work; otherwise the text after the last ``=`` is the weight."""
    text = spec.strip()
    if not text:
        raise ConfigError("guide", spec, "an image file, optionally with a weight: flowers.jpg or flowers.jpg=0.5")
    path, sep, weight = text.rpartition("=")
    if not sep or Path(text).expanduser().exists() or not path:
        return text, 1.0
    return path, _weight(weight, "guide weight", f"{path}=0.5")


@dataclass(frozen=True)
class Diversity:
    """``weight * diversity(layer)`` added to the objective; `layer` None picks it (see module doc)."""

    weight: float
    layer: str | None = None

    def __post_init__(self) -> None:
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise ConfigError("diversity", w, "a weight > 0, e.g. 1 or mixed4a=1")
        object.__setattr__(self, "weight", float(w))
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer):
            raise ConfigError("diversity", self.layer, "a layer name such as mixed4a")

    def __str__(self) -> str:
        return f"{self.weight:g}" if self.layer is None else f"{self.layer}={self.weight:g}"


def parse_diversity(spec: str) -> Diversity:
    """``W`` or ``LAYER=W`` (e.g. ``1``, ``mixed4a=0.5``, ``@lower=2``)."""
    text = spec.strip()
    layer, sep, weight = text.rpartition("=")
    if sep and layer.strip():
        return Diversity(_weight(weight, "diversity", "mixed4a=1"), layer.strip())
    return Diversity(_weight(text, "diversity", "--diversity 1 or --diversity mixed4a=1"))


@dataclass(frozen=True, eq=False)
class Guide:
    """A guide image: (1,3,h,w) float RGB in [0,1] (any size) and the weight of its terms.

    `size`: the longest side the guide is scaled to before its features are taken (None: the
    network's training size, 224 for the bundled models). `source` names it in metadata.
    """

    image: torch.Tensor
    weight: float = 1.0
    source: str = "tensor"
    size: int | None = None
    _features: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"a guide image must be a tensor, not {type(img).__name__}")
        if img.dim() == 3:
            img = img[None]
        if img.dim() != 4 or img.shape[:2] != (1, 3):
            raise ValueError(f"a guide image must be (3,H,W) or (1,3,H,W), got {tuple(self.image.shape)}")
        object.__setattr__(self, "image", img.detach().float())
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise ConfigError("guide weight", w, "a finite number")
        object.__setattr__(self, "weight", float(w))
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise ConfigError("guide size", self.size, "a whole number of pixels, at least 1")

    @classmethod
    def load(cls, spec: str | os.PathLike, *, max_pixels: int | None = None, size: int | None = None) -> Guide:
        """A guide from ``IMAGE`` or ``IMAGE=W`` (`parse_guide`). Errors as
        `dreamer.io.images.load_image`: a missing file is a UsageError (exit 2), a file that is
        not an image an ImageError (exit 1)."""
        from .io.images import load_image

        path, weight = parse_guide(os.fspath(spec))
        return cls(load_image(path, max_pixels=max_pixels), weight, source=path, size=size)

    def features(self, network, node: str) -> torch.Tensor:
        """(C, N) activation vectors of `node` over the guide's positions, computed once per
        network, node and device (the guide scaled first, see `guide_features`)."""
        key = (id(network.module), node, str(network.device))
        found = self._features.get(key)
        if found is None:
            found = self._features[key] = guide_features(network, self.image, node, size=self.size)
        return found


def guide_features(network, image: torch.Tensor, node: str, *, size: int | None = None) -> torch.Tensor:
    """The guide `image` (1,3,h,w) in [0,1] scaled so its longest side is `size` (default the
    network's training size, 224), passed through `network` up to `node`: a (C, N) float32
    tensor on the network's device, one column per position. Grids of more than 4096 positions
    are average-pooled down to about that many (the best-match search compares every dream
    position with every column)."""
    from .io.images import resize

    side = size or (network.spec.input_size if network.spec is not None else 224)
    h, w = image.shape[-2:]
    scale = side / max(h, w)
    hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    if min(hw) < network.min_size:
        raise UsageError(
            f"the guide would be {hw[1]}x{hw[0]} pixels at {side} px on its longest side; "
            f"the network needs at least {network.min_size} per side",
            hint="use a guide closer to square, or a larger guide size",
        )
    x = resize(image.float(), hw) if hw != (h, w) else image.float()
    with torch.no_grad():
        acts = network.extractor([node])(x.to(network.device))[node].float()
    if acts.dim() != 4:
        raise ConfigError("layer", node, "a layer with a spatial grid (not the class scores) for a guide")
    positions = acts.shape[-2] * acts.shape[-1]
    if positions > _MAX_GUIDE_POSITIONS:
        f = math.sqrt(positions / _MAX_GUIDE_POSITIONS)
        acts = F.adaptive_avg_pool2d(acts, (max(1, int(acts.shape[-2] / f)), max(1, int(acts.shape[-1] / f))))
    return acts[0].flatten(1).contiguous()


@dataclass(frozen=True, eq=False)
class Controls:
    """What steers a dream besides its config (see the module docstring).

    - `guides`: `Guide`s (their terms are summed, each with its weight);
    - `mask`: a tensor in [0,1], any size ((H,W), (1|3,H,W) or (1,1|3,H,W); see
      `dreamer.masks.as_mask`), scaled to each image; `mask_source` names it in metadata;
    - `keep_colors`: keep the input's chroma under the dream's luminance;
    - `diversity`: a `Diversity` (or a number, its weight); needs a batch of >= 2 images.
    """

    guides: tuple[Guide, ...] = ()
    mask: torch.Tensor | None = None
    mask_source: str | None = None
    keep_colors: bool = False
    diversity: Diversity | None = None

    def __post_init__(self) -> None:
        guides = (self.guides,) if isinstance(self.guides, Guide) else tuple(self.guides)
        for g in guides:
            if not isinstance(g, Guide):
                raise TypeError(f"guides must be Guide objects, not {type(g).__name__}")
        object.__setattr__(self, "guides", guides)
        if self.mask is not None:
            from .masks import as_mask

            object.__setattr__(self, "mask", as_mask(self.mask, source=f"mask {self.mask_source or ''}".strip()))
        if not isinstance(self.keep_colors, bool):
            raise ConfigError("keep_colors", self.keep_colors, "true or false")
        if self.diversity is not None and not isinstance(self.diversity, Diversity):
            object.__setattr__(self, "diversity", Diversity(self.diversity))  # type: ignore[arg-type]

    @property
    def empty(self) -> bool:
        """True when nothing is steered (the dream is the plain loop's)."""
        return not self.guides and self.mask is None and not self.keep_colors and self.diversity is None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for an output's metadata (what was given, not the pixels)."""
        out: dict[str, Any] = {}
        if self.guides:
            out["guides"] = [{"source": g.source, "weight": g.weight, "size": g.size} for g in self.guides]
        if self.mask is not None:
            out["mask"] = self.mask_source or "tensor"
        if self.keep_colors:
            out["keep_colors"] = True
        if self.diversity is not None:
            out["diversity"] = str(self.diversity)
        return out


def check_controls(config: DreamConfig, controls: Controls) -> None:
    """The mistakes that need no network: a guide with a neuron term (ConfigError)."""
    if controls.guides:
        for target in config.layers:
            if getattr(target, "position", None) is not None:
                raise ConfigError(
                    "guide", controls.guides[0].source, "a guide acts on whole layers, not on a neuron",
                    hint=f"drop the @position from {target}, or the guide",
                )


def steered_objective(network, config: DreamConfig, controls: Controls = Controls()):
    """The objective of `config`'s layer and class terms on `network`, steered by `controls`.

    Without guides it is `objectives.build_objective`'s (plain layers, neurons, classes). With
    guides, each layer term becomes the weighted sum of its guides' `guide` terms (on the same
    channels; with no layer terms a guide acts at the model's default layer, ``@default``) and
    the class terms are added. A diversity term is added last.
    """
    from .config import LayerTarget
    from .objectives import build_objective, diversity, guide
    from .targets import resolve_targets

    check_controls(config, controls)
    layers = tuple(config.layers)
    if not controls.guides:
        objective = build_objective(network, layers, config.classes)
    else:
        if not layers:
            layers = (LayerTarget("@default") if network.spec is not None else _no_layer("guide"),)
        terms = []
        for info, target in resolve_targets(network, layers).layers:
            for g in controls.guides:
                feats = g.features(network, info.node)
                terms.append(target.weight * g.weight * guide(info.node, feats, target.channels))
        if config.classes:
            terms.append(build_objective(network, (), config.classes))
        objective = sum(terms)
    if controls.diversity is not None:
        where = controls.diversity.layer
        if where is None:
            where = layers[0].layer if layers else (DIVERSITY_ROLE if network.spec is not None else _no_layer("diversity"))
        objective = objective + controls.diversity.weight * diversity(network.resolve(where).node)
    return objective


def _no_layer(what: str) -> str:
    raise ConfigError(what, "", f"a --layer to act at (a custom network has no default layer for the {what})")


def check_batch(controls: Controls, batch: int) -> None:
    """ConfigError unless a diversity term has a batch of at least 2 images to compare."""
    if controls.diversity is not None and batch < 2:
        raise ConfigError(
            "batch", batch, "at least 2 images: diversity makes the images of a batch differ from each other",
            hint="dream 2 or more images together: --batch 4 on the command line, batch=4 in Python",
        )


def finish(result: torch.Tensor, original: torch.Tensor, controls: Controls) -> torch.Tensor:
    """Kept colours, then the mask: `result` (B,3,H,W) and the `original` it was dreamed from
    (B or 1,3,H,W, the same size) -> (B,3,H,W) on result's device."""
    if controls.keep_colors:
        from .colors import keep_colors

        result = keep_colors(result, original)
    if controls.mask is not None:
        from .masks import composite

        result = composite(result, original, controls.mask)
    return result


def dream(
    images: torch.Tensor,
    network,
    config: DreamConfig = DreamConfig(),
    *,
    controls: Controls = Controls(),
    objective=None,
    seeds: Sequence[int] | None = None,
    progress=None,
) -> torch.Tensor:
    """Dream on `images` (B,3,H,W) float RGB in [0,1] (never modified) steered by `controls`.

    `network`: a loaded Network, or a `dreamer.backend.PreparedNetwork` held across calls.

    Same contract as `dreamer.loops.run_config` (which it calls, and which it can stand in
    for, e.g. as `zoom_frames`'s ``dream``): returns a new (B,3,H,W) float32 tensor in [0,1] on
    the network's device. `objective`, if given, replaces the one built by `steered_objective`
    (guides and diversity are then the caller's business; colours and mask still apply).
    """
    from .backend import PreparedNetwork
    from .loops import run_config

    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B,3,H,W), got {tuple(images.shape)}")
    check_batch(controls, images.shape[0])
    if objective is None and (controls.guides or controls.diversity is not None):
        plain = network.network if isinstance(network, PreparedNetwork) else network
        objective = steered_objective(plain, config, controls)
    out = run_config(images, network, config, objective=objective, seeds=seeds, progress=progress)
    if controls.keep_colors or controls.mask is not None:
        out = finish(out, images, controls)
    return out


def controls_from(guide: Any = None, mask: Any = None, keep_colors: bool = False, diversity: Any = None) -> Controls | None:
    """The `Controls` that the Python API's keyword arguments ask for, or None when none is given.

    `guide`: an image (path, ``"path=W"`` is for the CLI; here a path, PIL image, tensor or
    `Guide`) or a list of them; `mask`: a path, PIL image or tensor; `keep_colors`: a bool;
    `diversity`: a weight, ``"LAYER=W"`` or a `Diversity`."""
    if guide is None and mask is None and not keep_colors and diversity is None:
        return None
    from .io import images

    def as_tensor(value: Any) -> torch.Tensor:
        return images.from_pil(value) if images.is_pil(value) else value

    guides = []
    for g in guide if isinstance(guide, (list, tuple)) else ([] if guide is None else [guide]):
        if isinstance(g, Guide):
            guides.append(g)
        elif isinstance(g, (str, os.PathLike)):
            guides.append(Guide.load(g))
        else:
            guides.append(Guide(as_tensor(g), source="PIL image" if images.is_pil(g) else "tensor"))
    mask_source = None
    if isinstance(mask, (str, os.PathLike)):
        from .masks import load_mask

        mask, mask_source = load_mask(mask), os.fspath(mask)
    elif mask is not None:
        mask = as_tensor(mask)
    if isinstance(diversity, str):
        diversity = parse_diversity(diversity)
    elif diversity is not None and not isinstance(diversity, Diversity):
        diversity = Diversity(diversity)
    return Controls(guides=tuple(guides), mask=mask, mask_source=mask_source, keep_colors=bool(keep_colors), diversity=diversity)


def steered_loop(controls: Controls):
    """A frame loop with `dreamer.loops.run_config`'s signature that dreams steered by
    `controls` (for `zoom_frames`, `dream_videos` and the sessions' ``dream``)."""

    def loop(images, network, config, **kwargs):
        return dream(images, network, config, controls=controls, **kwargs)

    return loop
