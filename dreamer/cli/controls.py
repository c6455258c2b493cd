"""The dream controls' options (`--guide`, `--mask`, `--keep-colors`, and on `run` `--batch` and
`--diversity`), defined once for every command that has them, and what they become: a
`dreamer.steer.Controls` with its guide and mask images loaded.

Light at import (click only): images are read when `controls_from_flags` is called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .common import option

__all__ = [
    "checked_dream",
    "control_options",
    "controls_from_flags",
    "CONTROL_FLAGS",
    "batch_paths",
    "batch_seeds",
    "control_warnings",
    "start_images",
    "save_results",
    "check_batch_outputs",
]

#: flag names (click parameter names) the control options add; `controls_from_flags` pops them
CONTROL_FLAGS = ("guides", "mask", "keep_colors", "batch", "diversity", "sheet")


def control_options(f: Callable | None = None, /, *, batch: bool = False) -> Callable:
    """`@control_options` (guide, mask, kept colours) or `@control_options(batch=True)` (also
    `--batch N`, `--diversity [LAYER=]W` and `--sheet`: several variations of each image)."""
    decorators = [
        option(
            "--guide", "guides", multiple=True, metavar="IMAGE[=W]",
            help="Grow what this image shows: at the --layer layers each position is pushed towards "
            "the guide's feature it matches best (repeatable; the guide is scaled to 224 px).",
        ),
        option(
            "--mask", metavar="IMAGE",
            help="Dream only where this image is white (grey blends, black stays exactly as it was); "
            "scaled to each image's size.",
        ),
        option("--keep-colors", is_flag=True, default=None, help="Keep the input's colours: dream in luminance only."),
    ]
    if batch:
        decorators += [
            option(
                "--batch", type=click.IntRange(min=1, max=256), metavar="N", show_default="1",
                help="Dream N variations of each image together (seeds SEED .. SEED+N-1), "
                "written as IMAGE.dream.1.png ... or one --sheet.",
            ),
            option(
                "--diversity", metavar="[LAYER=]W",
                help="Make the variations of a --batch differ from each other (Gram-matrix "
                "dissimilarity at LAYER, by default the first --layer's), weight W, e.g. 50.",
            ),
            option("--sheet", is_flag=True, default=None, help="With --batch: write the variations as one labelled sheet."),
        ]
    def decorator(g: Callable) -> Callable:
        for d in reversed(decorators):
            g = d(g)
        return g

    return decorator(f) if f is not None else decorator


def controls_from_flags(flags: dict[str, Any], *, max_pixels: int | None = None):
    """Pop the control flags from `flags` and return (Controls, batch size, sheet).

    Guide and mask files are read here, before any model loads: a missing file is a usage error
    (exit 2), a file that is not an image a runtime error (exit 1), an all-black mask a usage error.
    `--diversity` without a `--batch` of at least 2 is a usage error."""
    from ..errors import ConfigError, UsageError

    values = {key: flags.pop(key, None) for key in CONTROL_FLAGS}
    batch = values["batch"] or 1
    diversity = values["diversity"]
    if diversity is not None and batch < 2:
        raise UsageError(
            "--diversity makes the variations of a batch differ: it needs --batch 2 or more",
            hint="e.g. --batch 4 --diversity 50",
        )
    if values["sheet"] and batch < 2:
        raise UsageError("--sheet lays out the variations of a --batch: give --batch 2 or more")
    if not (values["guides"] or values["mask"] or values["keep_colors"] or diversity is not None):
        from ..steer import Controls

        return Controls(), batch, bool(values["sheet"])

    from ..masks import load_mask
    from ..steer import Controls, Guide, parse_diversity

    try:
        parsed = parse_diversity(diversity) if diversity is not None else None
    except ConfigError as exc:
        raise UsageError(f"--diversity {diversity}: {exc.allowed}") from None
    guides = tuple(Guide.load(spec, max_pixels=max_pixels) for spec in values["guides"] or ())
    mask = load_mask(values["mask"], max_pixels=max_pixels) if values["mask"] else None
    controls = Controls(
        guides=guides, mask=mask, mask_source=values["mask"], keep_colors=bool(values["keep_colors"]), diversity=parsed
    )
    return controls, batch, bool(values["sheet"])


def control_warnings(controls, size_hw: tuple[int, int], what: str, *, noise: bool) -> list[str]:
    """Warnings for one image about to be dreamed with `controls`."""
    out = []
    if controls.mask is not None:
        from ..masks import mask_aspect_differs

        if mask_aspect_differs(controls.mask, size_hw):
            mh, mw = controls.mask.shape[-2:]
            out.append(f"the mask ({mw}x{mh}) is stretched to {what} ({size_hw[1]}x{size_hw[0]})")
    if controls.keep_colors and noise:
        out.append(f"--keep-colors keeps the colours of {what}, and noise has none: the result is grey")
    return out


def batch_paths(path: Path, batch: int, sheet: bool) -> list[Path]:
    """Where the variations of one image go: `path` itself for one image or a sheet, else
    ``STEM.1.png`` ... beside it (``photo.dream.png`` -> ``photo.dream.1.png``)."""
    if batch == 1 or sheet:
        return [path]
    return [path.with_name(f"{path.stem}.{i}{path.suffix}") for i in range(1, batch + 1)]


def batch_seeds(seed: int, batch: int) -> list[int]:
    """The seeds of a batch's variations: `seed`, `seed` + 1, ... (wrapping past 2**64 - 1)."""
    return [(seed + i) % 2**64 for i in range(batch)]


def start_images(load: Callable[[int], Any], noise: bool, seeds: list[int]):
    """The (N,3,H,W) start of a batch: `load(seed)` gives one image; noise is drawn once per
    variation (each from its own seed), a photo is the same for all."""
    import torch

    if len(seeds) == 1 or not noise:
        first = load(seeds[0])
        return first.expand(len(seeds), -1, -1, -1)
    return torch.cat([load(s) for s in seeds])


def save_results(result, out: Path, *, sheet: bool, seeds: list[int], metadata: Callable[[int], dict],
                 force: bool, inputs=()) -> list[Path]:
    """Write a dream's (N,3,H,W) result: one image to `out`, or N variations to `batch_paths`
    (each with its seed in `metadata(seed)`), or one labelled sheet to `out`. Returns the paths."""
    from ..io.images import save_image

    if len(seeds) == 1 or sheet:
        image = result[0].cpu()
        if sheet:
            from ..visualize.grid import make_grid

            image = make_grid(result.cpu(), labels=[f"seed {s}" for s in seeds])
        save_image(image, out, metadata=metadata(seeds[0]), force=force, inputs=inputs)
        return [out]
    paths = batch_paths(out, len(seeds), sheet=False)
    for image, path, seed in zip(result, paths, seeds):
        save_image(image.cpu(), path, metadata=metadata(seed), force=force, inputs=inputs)
    return paths


def check_batch_outputs(outputs: list[Path], batch: int, sheet: bool, *, force: bool, inputs=()) -> None:
    """Every variation's file checked before any work (an existing one only with --force)."""
    from ..io.images import check_output_path

    if batch == 1 or sheet:
        return
    for out in outputs:
        for path in batch_paths(out, batch, sheet=False):
            if path.parent.exists():
                check_output_path(path, force=force, inputs=inputs)


def checked_dream(controls=None):
    """The loop every frame of a zoom or video is dreamed with (steered by `controls`: guide,
    mask, kept colours), refusing a frame with NaN/inf values (which would otherwise be stored
    as black) with the setting that likely caused it."""
    from ..steer import Controls, steered_loop
    from .common import check_finite

    steered = steered_loop(controls if controls is not None else Controls())

    def dream(images, network, config, **kwargs):
        out = steered(images, network, config, **kwargs)
        check_finite(out, config, what="a frame")
        return out

    return dream
