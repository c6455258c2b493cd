"""The two optimisation loops, siblings that never import each other, and `run_config`, which
picks the one a config asks for.

- `deepdream.dream`: the classic 2015 recipe (octave pyramid, jitter, gradient steps normalised
  by mean |g|), ``param="pixel"``;
- `render.render`: feature visualisation (an image held in a parameterisation, optimised with
  Adam through random transforms), ``param="fft"``.

Both ask a `dreamer.backend.PreparedNetwork` for gradients and use the transforms of
`dreamer.transforms`. Both are pure: tensors in, tensors out, progress through a callback; they
never print or touch files.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..config import DreamConfig
from ..objectives import Objective
from .common import NOISE_AMPLITUDE, Progress, ProgressFn, noise_amplitude
from .deepdream import OctavePlan, dream, octave_warning, plan_octaves
from .render import render

__all__ = [
    "run_config",
    "dream",
    "render",
    "Progress",
    "ProgressFn",
    "OctavePlan",
    "plan_octaves",
    "octave_warning",
    "noise_amplitude",
    "NOISE_AMPLITUDE",
]


def run_config(
    images: torch.Tensor,
    network,
    config: DreamConfig = DreamConfig(),
    *,
    objective: Objective | None = None,
    seeds: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Run the loop `config.param` asks for: ``pixel`` the classic `dream`, ``fft`` a `render`.
    Same arguments and result as either (see them)."""
    loop = render if config.param == "fft" else dream
    return loop(images, network, config, objective=objective, seeds=seeds, progress=progress)
