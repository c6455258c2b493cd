"""`dreamer presets preview`: every preset (or those chosen) on one photo, as one labelled sheet.

Attached to the `presets` group of `dreamer.cli.presets`; the sheet is made by
`dreamer.visualize.preview`.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import force_option, max_pixels_option, option, output_option, runtime_options, warn
from .presets import presets

# dreamer.visualize.preview's defaults, written out so that `--help` imports no torch (a test
# checks they agree)
PREVIEW_SIZE = 128
PREVIEW_PIXEL_STEPS = 8
PREVIEW_FFT_STEPS = 96


@presets.command("preview")
@click.argument("photo", required=False, metavar="[PHOTO]")
@option(
    "--preset", "-p", "chosen", multiple=True, metavar="NAME|FILE",
    show_default="every bundled preset", help="A preset to show, repeatable.",
)
@option(
    "--size", "-s", type=click.IntRange(min=32, max=4096), default=PREVIEW_SIZE, metavar="N",
    show_default=str(PREVIEW_SIZE), help="Longest side of each preview (the photo is scaled to it), pixels.",
)
@option(
    "--steps", type=click.IntRange(min=1, max=100_000), metavar="N",
    show_default=f"each preset's, at most {PREVIEW_PIXEL_STEPS} per octave, or {PREVIEW_FFT_STEPS} for fft",
    help="Steps for every preset.",
)
@option("--seed", type=click.IntRange(min=0, max=2**64 - 1), default=0, metavar="N", show_default="0", help="Random seed.")
@option("--columns", type=click.IntRange(min=1), metavar="N", show_default="about square", help="Grid cells per row.")
@runtime_options
@max_pixels_option
@output_option
@force_option
def preview(
    photo: str | None,
    chosen: tuple[str, ...],
    size: int,
    steps: int | None,
    seed: int,
    columns: int | None,
    model: str | None,
    weights: str | None,
    device: str | None,
    quiet: bool,
    max_pixels: int | None,
    output: str | None,
    force: bool,
) -> None:
    """Show what each preset does: one labelled contact sheet of every preset (or each --preset)
    applied to PHOTO, small and quick, so you can pick one by looking.

    Presets that start from noise are grown from noise; the others dream on PHOTO (on grey
    noise when no PHOTO is given). Each runs at --size pixels with few steps: a preview, not
    the finished picture. --model runs every preset on that model (the bundled presets name
    their layers by role, so they work on every model); a preset the model cannot run gets a
    grey tile saying so. Writes PHOTO.presets.png beside the photo (presets.preview.png here
    without one) unless -o says otherwise.

    \b
    Examples:
      dreamer presets preview photo.jpg
      dreamer presets preview photo.jpg -p high-level -p low-level -p banana -o sheet.png
      dreamer presets preview --model efficientnet-lite0 --size 160 --steps 20
    """
    from .common import make_folders, open_network, parse_sources, plan_named_outputs, shown
    from .progress import ProgressLine

    from ..presets import list_presets, load_preset

    if model is not None:
        from ..models import get_spec

        get_spec(model)  # a typo fails now, with the closest names
    found = [load_preset(name) for name in chosen] if chosen else list_presets()
    source = parse_sources([photo])[0] if photo is not None else None
    if source is not None and source.path is None:
        raise click.UsageError(f"PHOTO must be an image file, not {shown(photo)} (noise presets grow from noise anyway)")
    default = (source.path.parent, source.stem) if source is not None else (Path.cwd(), "presets")
    tail = ".presets.png" if source is not None else ".preview.png"
    out = plan_named_outputs([default], output, force=force, tail=tail)[0]

    import torch

    from ..io.images import check_image, load_image, save_image
    from ..io.metadata import build_metadata
    from ..visualize.preview import preview_presets, preview_sheet

    image = None
    if source is not None:
        check_image(source.path, max_pixels=max_pixels)
        image = load_image(source.path, max_pixels=max_pixels)
    networks: dict[str, object] = {}

    def network_for(name: str):
        if name not in networks:
            networks[name] = open_network(name, weights, device, quiet=quiet)
        return networks[name]

    bar = ProgressLine("presets", quiet=quiet)
    result = preview_presets(
        found, network_for, image, model=model, size=size, steps=steps, seed=seed,
        progress=lambda done, total, name: bar.update(done, total, name),
    )
    bar.update(len(found), len(found), "done")
    bar.close()
    for name, why in result.notes:
        warn(f"preset {name} is not shown: {why}", quiet=quiet)
    on = f"on {source.path.name}" if source is not None else "from noise"
    models = ", ".join(sorted(networks)) or (model or "-")
    title = f"dreamer presets {on} ({models}, {size} px, preview steps)"
    sheet = preview_sheet(result, title=title, columns=columns)
    first = next(iter(networks.values()), None)
    meta = build_metadata(
        None, model=models, weights=getattr(first, "weights", weights or "pretrained"),
        device=str(getattr(first, "device", torch.device("cpu"))), source=photo or "noise", seed=seed,
        presets=[p.name for p in found], size=size, steps=steps,
    )
    make_folders(out)
    save_image(sheet, out, metadata=meta, force=force)
    if not quiet:
        click.echo(str(out))
