"""Channel visualisations: an image grown from noise for each of a layer's channels, on one sheet.

Each image maximises the mean activation of its own channel (Lucid's channel objective),
grown by the engine (`dreamer.loops.deepdream.dream`): with ``param="fft"`` and
``transforms="standard"`` (the feature-visualisation recipe, `dreamer.loops.render`) or the classic
pixel ascent with octaves (``param="pixel"``). Several channels are grown in one batch: each
image's score reads only its own channel, and the network (in eval mode) treats the images of
a batch independently, so a channel's picture does not depend on the others in its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..config import DreamConfig, LayerTarget
from ..errors import ConfigError
from ..objectives import Objective
from .grid import make_grid
from .layers import resolve_unit

__all__ = ["channel_batch_objective", "channels_config", "grow_channels", "channels_sheet"]


def channel_batch_objective(node: str, channels: Sequence[int]) -> Objective:
    """Image b of a batch scores the mean activation of `channels[b]` of `node`: shape (B,)."""
    index = torch.tensor([int(c) for c in channels], dtype=torch.long)

    def fn(acts) -> torch.Tensor:
        a = acts[node]
        if a.shape[0] != len(index):
            raise ValueError(f"{a.shape[0]} images for {len(index)} channels")
        picked = a[torch.arange(a.shape[0], device=a.device), index.to(a.device)]
        return picked.float().reshape(a.shape[0], -1).mean(1)

    chosen = tuple(index.tolist())
    return Objective(fn, [node], f"channels({node}:{','.join(map(str, chosen))})", key=("channels", node, chosen))


def channels_config(layer: str, channels: Sequence[int], *, param: str = "fft", **fields) -> DreamConfig:
    """The DreamConfig recorded for (and driving) a channel sheet: `param`, standard transforms,
    and any other DreamConfig `fields` (steps, learning_rate, octaves, seed ...)."""
    fields.setdefault("transforms", "standard")
    return DreamConfig(layers=(LayerTarget(layer, tuple(channels)),), param=param, **fields)


def grow_channels(
    network,
    layer: str,
    channels: Sequence[int],
    *,
    size: tuple[int, int] = (128, 128),
    config: DreamConfig | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Grow one image per channel of `layer` from noise: (N,3,H,W) float32 CPU in [0,1].

    `config` chooses how (default `channels_config` with ``param="fft"``); its layers are only
    recorded, the objective is each image's own channel. Channel c starts from noise seeded
    by ``config.seed + c`` (modulo 2**64) and uses that seed for its transforms, so with ``param="fft"`` its
    picture is the same whatever else is grown beside it (in both parameterisations).
    `progress(done, total)` counts steps over all batches.
    """
    from ..backend import prepare
    from ..io.images import make_noise
    from ..loops import noise_amplitude, run_config
    from ..targets import check_channels

    info, _ = resolve_unit(network, layer, channel="none", what="channels")
    channels = [int(c) for c in channels]
    if not channels:
        raise ConfigError("channels", channels, "at least one channel")
    check_channels(info, channels)
    if batch_size < 1:
        raise ConfigError("batch_size", batch_size, "an integer >= 1")
    config = config or channels_config(info.name, channels)
    prepared = prepare(network)  # once for all batches
    results = []
    batches = [channels[i : i + batch_size] for i in range(0, len(channels), batch_size)]
    per_batch: list[int] = []
    for n, group in enumerate(batches):
        seeds = [(config.seed + c) % 2**64 for c in group]  # a seed near 2**64 wraps around
        amplitude = noise_amplitude(config.param)
        start = torch.cat([make_noise(size, seed=s, amplitude=amplitude) for s in seeds])
        objective = channel_batch_objective(info.node, group)

        def report(p, n=n) -> None:
            if progress is not None:
                if not per_batch:
                    per_batch.append(p.total)
                progress(n * per_batch[0] + p.done, len(batches) * per_batch[0])

        out = run_config(start, prepared, config, objective=objective, seeds=seeds, progress=report)
        results.append(out.detach().float().cpu())
    return torch.cat(results)


def channels_sheet(
    images: torch.Tensor, channels: Sequence[int], layer: str, *, columns: int | None = None, title: str | None = None
) -> torch.Tensor:
    """The grown images (N,3,H,W) as a contact sheet labelled with their channel numbers."""
    labels = [f"{layer}:{c}" for c in channels]
    return make_grid(images, labels=labels, columns=columns, title=title)
