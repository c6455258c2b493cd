"""`dreamer run` (dream on images) and `dreamer layers` (list a model's layers)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from . import main
from .common import (
    check_finite, check_targets, config_from_flags, dream_options, each_source, force_option, load_source, make_folders,
    max_pixels_option, open_network, output_option, parse_sources, plan_outputs, runtime_options, size_option, warn,
)
from .controls import check_batch_outputs, control_options, control_warnings, controls_from_flags
from .progress import ProgressLine


@main.command()
@click.argument("images", nargs=-1, metavar="IMAGE...")
@dream_options
@control_options(batch=True)
@runtime_options
@size_option()
@max_pixels_option
@output_option
@force_option
def run(images: tuple[str, ...], output: str | None, force: bool, size: int | None, max_pixels: int | None, quiet: bool, **flags) -> None:
    """Dream on IMAGE... (files, or noise:WIDTHxHEIGHT) and write IMAGE.dream.png beside each.

    An existing IMAGE.dream.png is kept: the next free name (IMAGE.dream-2.png ...) is used,
    unless -o names the output or --force overwrites it.

    \b
    Examples:
      dreamer run photo.jpg --layer mixed4c
      dreamer run photo.jpg --layer mixed3b --layer mixed4c=0.5 --octaves 5
      dreamer run photo.jpg --preset high-level -o out.png
      dreamer run noise:512x512 --class banana --param fft --transforms standard
      dreamer run photo.jpg --guide flowers.jpg --mask sky.png --keep-colors
      dreamer run noise:224x224 --class banana --param fft --batch 4 --diversity 50 --sheet

    Controls (guide, mask, kept colours, neurons, diversity): docs/controls.md.
    """
    controls, batch, sheet = controls_from_flags(flags, max_pixels=max_pixels)
    config, preset = config_from_flags(flags)
    texts = list(images)
    if not texts and preset is not None and preset.start:
        texts = [preset.start]
    if not texts:
        if preset is not None:
            raise UsageError(
                f"preset {preset.name!r} dreams on a photo: give one",
                hint=f"dreamer run photo.jpg --preset {preset.name} (or noise:512x512 instead of a photo)",
            )
        raise UsageError("no image given", hint="dreamer run photo.jpg (or noise:512x512)")
    sources = parse_sources(texts, size=size, max_pixels=max_pixels)
    check_targets(config)
    from ..steer import check_controls

    check_controls(config, controls)
    outputs = plan_outputs(sources, output, force=force, tail=".dream.png")
    check_batch_outputs(outputs, batch, sheet, force=force)

    import torch

    from ..backend import prepare
    from ..io.metadata import build_metadata
    from ..loops import noise_amplitude, octave_warning, plan_octaves
    from ..steer import dream
    from .controls import batch_seeds, save_results, start_images

    if len(sources) == 1 and sources[0].path is not None:
        from ..io.images import check_image

        check_image(sources[0].path, max_pixels=max_pixels)  # a bad file fails before the model loads
    network = open_network(config.model, flags.get("weights"), flags.get("device"), quiet=quiet)
    prepared = prepare(network)  # once for all images

    def work(n: int, src, out: Path) -> None:
        amplitude = noise_amplitude(config.param)
        seeds = batch_seeds(config.seed, batch)
        image = start_images(
            lambda seed: load_source(src, size=size, seed=seed, max_pixels=max_pixels, noise_amplitude=amplitude),
            src.is_noise, seeds,
        )
        too_small = octave_warning(src.text, tuple(image.shape[-2:]), config, network.min_size)
        for message in [too_small] + control_warnings(controls, tuple(image.shape[-2:]), src.text, noise=src.is_noise):
            if message:
                warn(message, quiet=quiet)
        label = f"[{n}/{len(sources)}] {src.stem}" if len(sources) > 1 else src.stem
        bar = ProgressLine(label, quiet=quiet)

        def report(p) -> None:
            bar.update(p.done, p.total, f"octave {p.octave + 1}/{p.octaves} step {p.step + 1}/{p.steps}")

        result = dream(image, prepared, config, controls=controls, seeds=seeds, progress=report)
        bar.close()
        check_finite(result, config)

        def meta(seed: int) -> dict[str, str]:
            extra = {"controls": controls.to_dict()} if not controls.empty else {}
            if batch > 1:
                extra["batch"] = batch
            used = (len(plan_octaves(tuple(image.shape[-2:]), config.octaves, config.octave_scale, network.min_size).sizes)
                    if config.param == "pixel" else None)
            return build_metadata(
                config, model=network.name, weights=network.weights, device=str(network.device), source=src.text,
                size=size, seed=seed, preset=preset.name if preset is not None else None, octaves_used=used, **extra,
            )

        make_folders(out)
        for path in save_results(result, out, sheet=sheet, seeds=seeds, metadata=meta, force=force):
            if not quiet:
                click.echo(str(path))
        del result
        if network.device.type == "cuda":
            torch.cuda.empty_cache()

    each_source(sources, outputs, work)


@main.command()
@click.option("--model", "-m", default="googlenet", show_default=True, help="Model to describe.")
def layers(model: str) -> None:
    """List the layers you can dream about: name, aliases, channels, stride, receptive field."""
    from ..models import get_spec

    spec = get_spec(model)
    click.echo(f"{spec.name}: {spec.description}")
    click.echo(f"{'layer':<10} {'channels':>8} {'stride':>6} {'rf px':>6}  aliases")
    for info in spec.layers:
        stride = str(info.stride) if info.stride else "-"
        rf = str(info.receptive_field) if info.receptive_field else "-"
        mark = " (default)" if info.name == spec.default_layer else ""
        click.echo(f"{info.name:<10} {info.channels:>8} {stride:>6} {rf:>6}  {', '.join(info.aliases)}{mark}")
    click.echo("Pick channels with LAYER:N, LAYER:A,B,C or LAYER:A-B; weight layers with LAYER=W; one neuron with LAYER:N@center or LAYER:N@X,Y (fractions 0-1).")
