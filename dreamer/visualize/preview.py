"""Preset previews: each preset applied to one photo (or grown from noise), small and quick, on
one labelled contact sheet, so a person can pick a preset by looking.

A preview is a short version of the real thing: every preset runs at `size` pixels (longest
side) with its step count capped (`PREVIEW_PIXEL_STEPS` per octave for the classic loop,
`PREVIEW_FFT_STEPS` in all for Fourier renders), or with the `steps` given. Presets that start
from noise start from noise of the tiles' size; the others dream on the photo (or, when none is
given, on grey noise too).

With `model`, every preset runs on that model (`dreamer.presets.for_model`: the bundled
presets name layers by role, ``@middle`` ...). A preset that cannot run there (a layer or
class the model lacks) gets a grey tile saying so instead of stopping the sheet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..config import DreamConfig
from ..errors import UsageError
from .grid import make_grid

__all__ = [
    "PREVIEW_SIZE",
    "PREVIEW_PIXEL_STEPS",
    "PREVIEW_FFT_STEPS",
    "PresetPreview",
    "preview_config",
    "preview_presets",
    "preview_sheet",
]

#: Default longest side of each preview, pixels.
PREVIEW_SIZE = 128
#: Most steps per octave a classic (pixel) preset gets in a preview, unless `steps` is given.
PREVIEW_PIXEL_STEPS = 8
#: Most Adam steps a Fourier (fft) preset gets in a preview, unless `steps` is given.
PREVIEW_FFT_STEPS = 96

_SKIPPED_GREY = 0.3


def preview_config(config: DreamConfig, steps: int | None = None) -> DreamConfig:
    """The short version of `config` a preview runs: `steps` if given, else its steps capped."""
    if steps is None:
        cap = PREVIEW_FFT_STEPS if config.param == "fft" else PREVIEW_PIXEL_STEPS
        steps = min(config.steps, cap)
    return config.replace(steps=steps)


@dataclass(frozen=True)
class PresetPreview:
    """The previews: `tiles` (N,3,h,w) float32 in [0,1] on the CPU, one `labels` entry per tile,
    and `notes`: (preset name, why it was skipped) for presets shown as grey tiles."""

    tiles: torch.Tensor
    labels: tuple[str, ...]
    notes: tuple[tuple[str, str], ...] = ()


def _fit_photo(photo: torch.Tensor, size: int) -> torch.Tensor:
    from ..io.images import resize

    h, w = photo.shape[-2:]
    f = size / max(h, w)
    return resize(photo.float(), (max(1, round(h * f)), max(1, round(w * f))))


def preview_presets(
    presets: Sequence,
    network_for: Callable[[str], object],
    photo: torch.Tensor | None = None,
    *,
    model: str | None = None,
    size: int = PREVIEW_SIZE,
    steps: int | None = None,
    seed: int = 0,
    include_photo: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> PresetPreview:
    """Run each of `presets` (`dreamer.presets.Preset`) small and quick.

    - `network_for(model_name)` returns the loaded network for a model (load each once);
    - `photo`: (1,3,H,W) RGB in [0,1] for the presets that dream on a photo (None: they start
      from grey noise too); scaled so its longest side is `size`; every tile has that shape
      (noise presets start from noise of the same size);
    - `model`: run every preset on this registry model (`dreamer.presets.for_model`); None:
      each on its own;
    - `steps`: steps for every preset (default: each preset's, capped; `preview_config`);
    - `include_photo`: the photo itself as the first tile, labelled "photo";
    - `progress(done, total, name)` is called before each preset.
    """
    from ..io.images import make_noise
    from ..loops import noise_amplitude, run_config
    from ..models import get_spec
    from ..presets import for_model

    if not presets:
        raise UsageError("no presets to preview")
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise UsageError(f"invalid size: {size!r} (at least 32 pixels)")
    if model is not None:
        get_spec(model)  # an unknown model is the caller's mistake, not one preset's
    base = _fit_photo(photo, size) if photo is not None else None
    hw = tuple(base.shape[-2:]) if base is not None else (size, size)
    tiles: list[torch.Tensor] = []
    labels: list[str] = []
    notes: list[tuple[str, str]] = []
    if base is not None and include_photo:
        tiles.append(base[0])
        labels.append("photo")
    for n, preset in enumerate(presets):
        if progress is not None:
            progress(n, len(presets), preset.name)
        try:
            moved = for_model(preset, model) if model is not None else preset
            config = preview_config(moved.config, steps)
            network = network_for(config.model)
            amplitude = noise_amplitude(config.param)
            from_noise = preset.start is not None and preset.start.startswith("noise:")
            if from_noise or base is None:
                start = make_noise(hw, seed=seed, amplitude=amplitude)
            else:
                start = base
            out = run_config(start, network, config, seeds=[seed])[0].float().cpu()
            label = preset.name if not (from_noise or base is None) else f"{preset.name} (noise)"
        except UsageError as exc:
            notes.append((preset.name, exc.message))
            out = torch.full((3, *hw), _SKIPPED_GREY)
            label = f"{preset.name}: n/a"
        tiles.append(out.clamp(0.0, 1.0))
        labels.append(label)
    return PresetPreview(torch.stack(tiles), tuple(labels), tuple(notes))


def preview_sheet(preview: PresetPreview, *, title: str | None = None, columns: int | None = None) -> torch.Tensor:
    """The previews on one labelled sheet: (3,H,W) float32 in [0,1] on the CPU."""
    return make_grid(preview.tiles, labels=list(preview.labels), columns=columns, title=title)
