"""The Python API for people who do not use the command line.

>>> import dreamer
>>> net = dreamer.load_model("googlenet")                      # pretrained (downloads once)
>>> out = dreamer.dream("photo.jpg", network=net, layers=["mixed4c"], octaves=4)
>>> out.save("photo.dream.png")
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .config import DreamConfig
from .devices import resolve_device
from .loops.deepdream import ProgressFn
from .loops.deepdream import dream as _dream
from .models import Network, load_model

__all__ = ["dream"]


def dream(
    image: Any,
    *,
    network: Network | None = None,
    config: DreamConfig | None = None,
    model: str | None = None,
    weights: str | os.PathLike = "pretrained",
    device: str | torch.device = "auto",
    seeds: list[int] | None = None,
    progress: ProgressFn | None = None,
    **overrides: Any,
) -> Any:
    """Dream on a PIL image, an image file path, or a tensor, and return the same kind of thing.

    - `image`: a `PIL.Image.Image` or a path (returns a PIL image), or a float tensor (3,H,W)
      or (B,3,H,W) RGB in [0,1] (returns a CPU float32 tensor of the same shape).
    - `network`: a loaded `Network` (from `load_model` or `Network.from_module` for your own
      `torch.nn.Module`); if omitted, `model`/`weights` are loaded on `device`.
    - `config` and keyword `overrides` (any `DreamConfig` field, e.g. ``layers=["mixed4c:97"]``,
      ``octaves=3``) choose the dream.
    """
    config = (config or DreamConfig()).replace(**overrides) if overrides else (config or DreamConfig())
    if network is None:
        network = load_model(model or config.model, weights=weights, device=resolve_device(device))
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
    batch = image.unsqueeze(0) if single else image
    out = _dream(batch, network, config, seeds=seeds, progress=progress).cpu()
    if as_pil:
        return images.to_pil(out[0])
    return out[0] if single else out
