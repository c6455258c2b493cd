"""`dreamer run` (dream on images) and `dreamer layers` (list a model's layers)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from . import main
from .common import check_targets, config_from_flags, each_source, dream_options, load_source, open_network, parse_sources, runtime_options, warn
from .progress import ProgressLine


def _outputs(sources, output: Path | None, force: bool) -> list[Path]:
    """Output path of each source, all checked before any work (nothing gets overwritten)."""
    from ..io.images import OUTPUT_FORMATS, check_output_path

    if output is not None and len(sources) > 1 and output.suffix.lower() in OUTPUT_FORMATS:
        raise UsageError(
            f"-o {output} names one file but {len(sources)} images were given",
            hint="with several images, -o names a directory",
        )
    paths = []
    for src in sources:
        if output is None:
            folder = src.path.parent if src.path is not None else Path.cwd()
            path = folder / f"{src.stem}.dream.png"
        elif len(sources) > 1 or output.is_dir():
            if output.exists() and not output.is_dir():
                raise UsageError(f"-o {output} is a file; with several images it must be a directory")
            if not output.exists() and output.parent.is_dir():
                output.mkdir()
            path = output / f"{src.stem}.dream.png"
        else:
            path = output
        inputs = [s.path for s in sources if s.path is not None]
        paths.append(check_output_path(path, force=force, inputs=inputs))
    if len(set(p.resolve() for p in paths)) < len(paths):
        raise UsageError("two inputs would be written to the same output file", hint="give them different names")
    return paths


@main.command()
@click.argument("images", nargs=-1, metavar="IMAGE...")
@dream_options
@runtime_options
@click.option("--size", "-s", type=click.IntRange(min=1), help="Scale the longest side to N pixels first.")
@click.option("--max-pixels", type=click.IntRange(min=1), help="Largest image accepted, in pixels [default 100M].")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Output file (or directory for several images).")
@click.option("--force", "-f", is_flag=True, help="Overwrite existing outputs.")
def run(images: tuple[str, ...], output: Path | None, force: bool, size: int | None, max_pixels: int | None, quiet: bool, **flags) -> None:
    """Dream on IMAGE... (files, or noise:WIDTHxHEIGHT) and write IMAGE.dream.png beside each.

    \b
    Examples:
      dreamer run photo.jpg --layer mixed4c
      dreamer run photo.jpg --layer mixed3b --layer mixed4c=0.5 --octaves 5
      dreamer run photo.jpg --preset high-level -o out.png
      dreamer run noise:512x512 --class banana --param fft --transforms standard
    """
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
    sources = parse_sources(texts)
    outputs = _outputs(sources, output, force)

    import torch

    from ..loops.deepdream import dream, plan_octaves
    from ..io.images import save_image
    from ..io.metadata import build_metadata
    from ..loops.render import NOISE_AMPLITUDE

    check_targets(config)
    if len(sources) == 1 and sources[0].path is not None:
        from ..io.images import check_image

        check_image(sources[0].path, max_pixels=max_pixels)  # a bad file fails before the model loads
    network = open_network(config.model, flags.get("weights"), flags.get("device"), quiet=quiet)

    def work(n: int, src, out: Path) -> None:
        # fft keeps the start's pixel grain, so its noise start is fainter (dreamer.loops.render)
        amplitude = NOISE_AMPLITUDE if config.param == "fft" else 0.1
        image = load_source(src, size=size, seed=config.seed, max_pixels=max_pixels, noise_amplitude=amplitude)
        h, w = image.shape[-2:]
        if config.param == "pixel":
            plan = plan_octaves((h, w), config.octaves, config.octave_scale, network.min_size)
            if plan.dropped:
                warn(
                    f"{src.text} ({w}x{h}) is too small for {config.octaves} octaves of scale "
                    f"{config.octave_scale:g}; using {len(plan.sizes)}",
                    quiet=quiet,
                )
        label = f"[{n}/{len(sources)}] {src.stem}" if len(sources) > 1 else src.stem
        bar = ProgressLine(label, quiet=quiet)

        def report(p) -> None:
            bar.update(p.done, p.total, f"octave {p.octave + 1}/{p.octaves} step {p.step + 1}/{p.steps}")

        result = dream(image, network, config, progress=report)
        bar.close()
        meta = build_metadata(
            config, model=network.name, weights=network.weights, device=str(network.device), source=src.text,
            size=size,
        )
        save_image(result[0].cpu(), out, metadata=meta, force=force)
        if not quiet:
            click.echo(str(out))
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
    click.echo("Pick channels with LAYER:N, LAYER:A,B,C or LAYER:A-B; weight layers with LAYER=W.")
