"""The Python API for people who do not use the command line.

>>> import dreamer
>>> net = dreamer.load_model("googlenet")                      # pretrained (downloads once)
>>> out = dreamer.dream("photo.jpg", network=net, layers=["mixed4c"], octaves=4)
>>> out.save("photo.dream.png")
>>> banana = dreamer.dream(dreamer.noise(384, 384, param="fft"), network=net, classes=["banana"],
...                        param="fft", transforms="standard", steps=256)

For many dreams on one network (the frames of a video), prepare it once and pass the prepared
network instead: ``prepared = dreamer.prepare(net)``; ``dreamer.dream(frame, network=prepared)``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .backend import PreparedNetwork
from .config import DreamConfig
from .devices import resolve_device, set_threads
from .loops import ProgressFn, noise_amplitude, run_config
from .models import Network, load_model

__all__ = ["dream", "noise"]


def dream(
    image: Any,
    *,
    network: Network | PreparedNetwork | None = None,
    config: DreamConfig | None = None,
    model: str | None = None,
    weights: str | os.PathLike = "pretrained",
    device: str | torch.device = "auto",
    seeds: list[int] | None = None,
    progress: ProgressFn | None = None,
    threads: int | None = None,
    guide: Any = None,
    mask: Any = None,
    keep_colors: bool = False,
    diversity: Any = None,
    batch: int | None = None,
    **overrides: Any,
) -> Any:
    """Dream on a PIL image, an image file path, or a tensor, and return the same kind of thing.

    - `image`: a `PIL.Image.Image` or a path (returns a PIL image), or a float tensor (3,H,W)
      or (B,3,H,W) RGB in [0,1] (returns a CPU float32 tensor of the same shape).
    - `network`: a loaded `Network` (from `load_model` or `Network.from_module` for your own
      `torch.nn.Module`), or a `PreparedNetwork` (`dreamer.prepare`) kept across many calls;
      if omitted, `model`/`weights` are loaded on `device`.
    - `config` and keyword `overrides` (any `DreamConfig` field, e.g. ``layers=["mixed4c:97"]``,
      ``octaves=3``) choose the dream, resolved like the command line's flags
      (`DreamConfig.override`): naming only classes drops the default layer, and naming only
      layers drops any classes; naming neither dreams about the model's default layer.
      ``param="fft"`` runs a render, ``pixel`` the classic loop.
    - `threads`: CPU threads for torch (see `dreamer.set_threads`); None keeps the current number.
    - Controls (`dreamer.steer`, docs/controls.md): `guide` an image (path, ``"path=W"``, PIL
      image, tensor or `steer.Guide`) or a list of them, grown at the layers; `mask` an image
      (path, PIL, tensor in [0,1]): dream where white, black stays bit-identical; `keep_colors`
      keeps the input's colours; `batch` N dreams N variations of one image (seeds
      ``config.seed`` .. +N-1, or `seeds`) and returns N results (a list of PIL images, or an
      (N,3,H,W) tensor); `diversity` (a weight, ``"LAYER=W"`` or `steer.Diversity`) makes them
      differ, and needs a batch of 2 or more.
    """
    base = config or DreamConfig()
    config = base.override(**overrides) if overrides else base
    set_threads(threads)
    if network is None:
        network = load_model(model or config.model, weights=weights, device=resolve_device(device))
    spec = (network.network if isinstance(network, PreparedNetwork) else network).spec
    if spec is not None and base == DreamConfig() and not {"layers", "classes"} & set(overrides):
        # nothing to dream named: the model's own default layer (DreamConfig's is GoogLeNet's), as the CLI does
        config = config.replace(layers=(spec.default_layer,))
    from .io import images

    if isinstance(image, (str, os.PathLike)):
        image = images.load_image(image)
        as_pil = True
    elif images.is_pil(image):
        image = images.from_pil(image)
        as_pil = True
    elif isinstance(image, torch.Tensor):
        as_pil = False
    else:
        raise TypeError(f"image must be a PIL image, a path or a tensor, not {type(image).__name__}")
    single = image.dim() == 3
    images_in = image.unsqueeze(0) if single else image
    from .steer import controls_from

    controls = controls_from(guide, mask, keep_colors, diversity)
    if batch is not None:
        from .errors import ConfigError

        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError("batch", batch, "a whole number of variations, at least 1")
        if images_in.shape[0] != 1:
            raise ConfigError("batch", batch, "variations of one image (this call has several)")
        images_in = images_in.expand(batch, -1, -1, -1)
        seeds = list(seeds) if seeds is not None else [config.seed + i for i in range(batch)]
    if controls is None:
        out = run_config(images_in, network, config, seeds=seeds, progress=progress).cpu()
    else:
        from .steer import dream as steered

        out = steered(images_in, network, config, controls=controls, seeds=seeds, progress=progress).cpu()
    if batch is not None:
        return [images.to_pil(x) for x in out] if as_pil else out
    if as_pil:
        return images.to_pil(out[0])
    return out[0] if single else out


def noise(width: int, height: int, *, seed: int = 0, param: str = "pixel") -> torch.Tensor:
    """A (3,height,width) start image of mid-grey noise, as faint as a dream of `param` wants
    (``fft``: nearly flat grey; ``pixel``: enough texture to grow from). Seeded."""
    from .io.images import make_noise

    return make_noise((height, width), seed=seed, amplitude=noise_amplitude(param))[0]
