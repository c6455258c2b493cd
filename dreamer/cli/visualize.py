"""Seeing inside the network: `dreamer activations`, `filters`, `top-images`, `occlusion`,
`deconv` and `channels`. Each parses, loads the model once, calls `dreamer.visualize`, and
saves PNGs with metadata. torch and the visualisations are imported inside command bodies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ..errors import UsageError
from . import main
from .common import (
    FiniteFloat, batch_option, cell_option, check_finite, columns_option, each_source, force_option, load_source,
    make_folders, max_pixels_option, open_network, option, output_option, parse_sources, plan_named_outputs,
    plan_outputs, runtime_options, size_option, warn,
)
from .common import MAX_LR, MAX_STEPS, Seed
from .progress import ProgressLine

_LR = 0.05  # DreamConfig's learning rate, the one channels uses when --lr is not given

_output_option = output_option
_force_option = force_option
_size_option = size_option()
_max_pixels_option = max_pixels_option
_columns_option = columns_option


def _model(flags: dict) -> str:
    return flags.get("model") or "googlenet"


def _default_layer(flags: dict) -> str:
    """The chosen model's default layer (mixed4c on googlenet)."""
    from ..models import get_spec

    return get_spec(_model(flags)).default_layer


def _check_layer(model: str, layer: str, **kwargs):
    """Check a layer spec against the model's table before any weights are loaded; the LayerInfo."""
    from ..models import get_spec
    from ..visualize.layers import resolve_unit

    return resolve_unit(get_spec(model), layer, **kwargs)[0]


def _single_output(folder: Path, stem: str, tail: str, output: str | None, force: bool, inputs=()) -> Path:
    """The one output of a command: `-o` (a file, or a folder for the default name), else
    `folder/STEM<tail>` (numbered when taken, see `plan_outputs`)."""
    return plan_named_outputs([(folder, stem)], output, force=force, tail=tail, inputs=inputs)[0]


def _save(image, path: Path, network, *, source: str, force: bool, quiet: bool, config=None, **extra) -> None:
    from ..io.images import save_image
    from ..io.metadata import build_metadata

    check_finite(image, config, what="the picture")
    meta = build_metadata(
        config, model=network.name, weights=network.weights, device=str(network.device), source=source, **extra
    )
    make_folders(path)
    save_image(image, path, metadata=meta, force=force)
    if not quiet:
        click.echo(str(path))


def _each_image(
    texts: tuple[str, ...], suffix: str, output: str | None, force: bool, quiet: bool,
    size: int | None, max_pixels: int | None, flags: dict, work: Callable, check: Callable | None = None,
) -> None:
    """The shared loop of the one-image-at-a-time commands: check sources and outputs, load the
    model once, then `work(network, source, image, out)` per image. With several images, a bad
    one is reported and skipped (exit code 1 at the end)."""
    if not texts:
        raise UsageError("no image given", hint="give one or more image files")
    sources = parse_sources(list(texts), size=size, max_pixels=max_pixels)
    if check is not None:
        check()
    outputs = plan_outputs(sources, output, force=force, tail=f"{suffix}.png")
    network = open_network(_model(flags), flags.get("weights"), flags.get("device"), quiet=quiet)

    def one(_n: int, src, out: Path) -> None:
        work(network, src, load_source(src, size=size, seed=0, max_pixels=max_pixels), out)

    each_source(sources, outputs, one)


# ----------------------------------------------------------------------------------------------


@main.command()
@click.argument("images", nargs=-1, metavar="IMAGE...")
@click.option(
    "--layer", "-l", metavar="LAYER[:CH]",
    help="Layer whose maps to show; LAYER:A-B or LAYER:A,B,C shows those channels instead of the strongest "
    "[default: the model's default layer, mixed4c on googlenet].",
)
@click.option("--top", "-k", type=click.IntRange(min=1), default=16, show_default=True, help="How many of the strongest channels.")
@click.option("--by", type=click.Choice(["mean", "max"]), default="mean", show_default=True, help="Rank channels by mean or peak activation.")
@click.option("--overlay", is_flag=True, help="Lay the maps over the photo.")
@click.option(
    "--normalize", type=click.Choice(["map", "layer"]), default="map", show_default=True,
    help="Scale each map to its own range, or all to the layer's range.",
)
@cell_option(128, 16)
@_columns_option
@_size_option
@_max_pixels_option
@_output_option
@_force_option
@runtime_options
def activations(images, layer, top, by, overlay, normalize, cell, columns, size, max_pixels, output, force, quiet, **flags) -> None:
    """Activation maps of a layer for IMAGE...: the K strongest channels, labelled.

    Writes IMAGE.activations.LAYER.png beside each image.

    \b
    Examples:
      dreamer activations photo.jpg --layer mixed4c --top 16
      dreamer activations photo.jpg --layer mixed3b --overlay
      dreamer activations photo.jpg --layer mixed4c:0-15
    """
    from ..config import parse_layer_target

    target = parse_layer_target(layer or _default_layer(flags))

    def check() -> None:
        info = _check_layer(_model(flags), target.layer, channel="none", spatial=True, what="activations")
        if target.channels is not None:
            _check_channels(info, target.channels)

    def work(network, src, image, out) -> None:
        from ..visualize.activations import activation_sheet

        sheet, shown = activation_sheet(
            network, image, target.layer, top=top, channels=target.channels, by=by,
            normalize=normalize, overlay=overlay, tile=cell, columns=columns,
        )
        _save(
            sheet, out, network, source=src.text, force=force, quiet=quiet, command="activations",
            layer=network.resolve(target.layer).name, channels=shown, by=by, normalize=normalize, overlay=overlay,
        )

    from ..visualize.layers import slug

    _each_image(images, f".activations.{slug(target.layer)}", output, force, quiet, size, max_pixels, flags, work, check)


def _check_channels(info, channels) -> None:
    from ..targets import check_channels

    check_channels(info, channels)


@main.command()
@click.option(
    "--layer", "-l", metavar="LAYER[:N]|PATH",
    help="Convolution to draw [default the first, conv1]; LAYER:N shows filter N per input channel; "
    "a module path (inception4c.branch2.1) picks a convolution inside a block.",
)
@cell_option(56, 8)
@click.option(
    "--normalize", type=click.Choice(["filter", "layer"]), default="filter", show_default=True,
    help="Scale each filter by its own largest weight, or all by the layer's.",
)
@_columns_option
@_output_option
@_force_option
@runtime_options
def filters(layer, cell, normalize, columns, output, force, quiet, **flags) -> None:
    """The filters (weights) of a convolution as a grid of small images.

    The first layer's filters see RGB, so each is a colour image (grey = 0). Deeper
    convolutions see many channels: pick one filter with LAYER:N to see it per input
    channel. Writes filters.LAYER.png in the current directory.

    \b
    Examples:
      dreamer filters
      dreamer filters --layer conv3:5
      dreamer filters --layer inception4c.branch2.1:0
    """
    from ..visualize.layers import slug

    name = layer or "conv1"
    if layer:
        _check_conv_name(_model(flags), layer)
    out = _single_output(Path.cwd(), "filters", f".{slug(name)}.png", output, force)
    network = open_network(_model(flags), flags.get("weights"), flags.get("device"), quiet=quiet)
    from ..visualize.filters import filters_sheet

    sheet, facts = filters_sheet(network, layer, tile=cell, normalize=normalize, columns=columns)
    _save(
        sheet, out, network, source=facts["node"], force=force, quiet=quiet, command="filters",
        layer=facts["name"], node=facts["node"], filter=facts["channel"], shape=list(facts["shape"]), normalize=normalize,
    )


def _check_conv_name(model: str, layer: str) -> None:
    """A filters --layer names a layer of the model or one of its modules: checked on the model
    built without weights (meta device), so a typo is reported before any download."""
    import torch

    from ..errors import UnknownNameError
    from ..models import get_spec

    spec = get_spec(model)
    name = layer.rsplit(":", 1)[0] if ":" in layer else layer
    try:
        spec.resolve(name)
        return
    except UnknownNameError:
        with torch.device("meta"):
            modules = {n for n, _ in spec.build().named_modules() if n}
        if name in modules:
            return
        raise


@main.command("top-images")
@click.argument("folder", metavar="FOLDER")
@click.option("--layer", "-l", required=True, metavar="LAYER:CH", help="The channel to rank images by, e.g. mixed4c:97.")
@click.option("--top", "-k", type=click.IntRange(min=1), default=9, show_default=True, help="How many images.")
@size_option(224, minimum=32, extra="Images are scanned at this size.")
@_max_pixels_option
@batch_option(16, "Images")
@click.option("--recursive", is_flag=True, help="Scan subfolders too.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False), help="Activation cache folder [default ~/.cache/dreamer/activations].")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the activation cache.")
@cell_option(160, 32)
@_columns_option
@_output_option
@_force_option
@runtime_options
def top_images(
    folder, layer, top, size, max_pixels, batch, recursive, cache_dir, no_cache, cell, columns, output, force, quiet, **flags
) -> None:
    """The images in FOLDER that excite one channel most, with the patch that does it.

    Scans every image once per layer (batched, with progress) and caches each channel's peak
    activation, so asking about another channel of the same layer is instant and an
    interrupted scan resumes. Pictures dreamer made (its metadata says so) are not ranked.
    Writes FOLDER.top.LAYER_CH.png beside the folder.

    \b
    Examples:
      dreamer top-images ~/Pictures/holiday --layer mixed4c:97
      dreamer top-images photos --layer mixed4c:12 --top 16 -o top.png
    """
    from ..visualize.layers import slug
    from ..errors import ImageError
    from ..visualize.top_images import list_images, made_by_dreamer

    target_text = layer
    _check_layer(_model(flags), target_text, channel="required", spatial=True, what="top-images")
    folder_path = Path(folder).expanduser()
    found = list_images(folder_path, recursive=recursive)
    own = [p for p in found if made_by_dreamer(p)]
    paths = [p for p in found if p not in set(own)]
    if own:
        names = ", ".join(p.name for p in own[:3]) + (" ..." if len(own) > 3 else "")
        warn(f"not ranking {len(own)} picture(s) dreamer made: {names}", quiet=quiet)
    if not paths:
        raise ImageError(f"no images in {folder_path} besides the {len(own)} dreamer made")
    resolved = folder_path.resolve()
    # every image in the folder is an input: -o (even with --force) never overwrites one
    out = _single_output(
        resolved.parent, resolved.name or "root", f".top.{slug(target_text)}.png", output, force, inputs=paths
    )

    network = open_network(_model(flags), flags.get("weights"), flags.get("device"), quiet=quiet)
    from ..visualize.layers import resolve_unit
    from ..visualize.top_images import cache_file_for, default_cache_dir, scan_images, top_images_sheet

    info, channel = resolve_unit(network, target_text, channel="required", spatial=True, what="top-images")
    cache_file = None
    if not no_cache:
        cache_file = cache_file_for(cache_dir or default_cache_dir(), network, info.name, size, folder_path)
    bar = ProgressLine(f"scanning {len(paths)} images", quiet=quiet)
    scan = scan_images(
        network, paths, info.name, size=size, batch_size=batch, cache_file=cache_file, max_pixels=max_pixels,
        progress=lambda done, total: bar.update(done, total, f"{done}/{total}"),
    )
    bar.close()
    for path, reason in scan.failed:
        warn(f"skipped {path}: {reason}", quiet=quiet)
    if scan.cache_error:
        warn(scan.cache_error, quiet=quiet)
    if not quiet and scan.reused:
        click.echo(f"{scan.reused} of {len(scan.paths)} images from the activation cache", err=True)
    sheet, hits = top_images_sheet(scan, channel, top=top, tile=cell, columns=columns, max_pixels=max_pixels)
    if hits and max(h.value for h in hits) <= 0:
        warn(
            f"{info.name}:{channel} does not fire on any of the {len(scan.paths)} images (its strongest activation "
            f"is {max(h.value for h in hits):.3g}), so the ranking means nothing; try another channel "
            f"(`dreamer activations IMAGE --layer {info.name}` shows the strong ones)",
            quiet=quiet,
        )
    _save(
        sheet, out, network, source=str(resolved), force=force, quiet=quiet, command="top-images",
        layer=info.name, channel=channel, size=size, scanned=len(scan.paths),
        top=[{"path": str(h.path), "activation": h.value, "position": list(h.position)} for h in hits],
    )


@main.command()
@click.argument("images", nargs=-1, metavar="IMAGE...")
@click.option("--class", "-c", "class_name", metavar="NAME|INDEX", help="Class whose probability to watch.")
@click.option("--patch", type=click.IntRange(min=1), default=32, show_default=True, help="Side of the grey square (px).")
@click.option("--stride", type=click.IntRange(min=1), default=8, show_default=True, help="Step between patch positions (px).")
@batch_option(32, "Occluded copies")
@click.option("--plain", is_flag=True, help="Write only the heat map over the photo, at the photo's size.")
@size_option(224, minimum=0, extra="The patch and stride are in these pixels; 0 keeps the image's size.")
@_max_pixels_option
@_output_option
@_force_option
@runtime_options
def occlusion(images, class_name, patch, stride, batch, plain, size, max_pixels, output, force, quiet, **flags) -> None:
    """Slide a grey patch over IMAGE... and map how much the class probability drops.

    Red: hiding that region lowers the probability (the network relies on it); blue: it
    raises it. Writes IMAGE.occlusion.png beside each image (the photo and the map). Each
    patch position is one forward pass, so images are first scaled to 224 pixels.

    \b
    Examples:
      dreamer occlusion dog.jpg
      dreamer occlusion dog.jpg --class pomeranian --patch 48 --stride 16
    """
    def check() -> None:
        if class_name:
            from ..models import get_spec
            from ..objectives import resolve_class

            resolve_class(class_name, get_spec(_model(flags)).categories)

    def work(network, src, image, out) -> None:
        from ..visualize.occlusion import occlusion_map, occlusion_overlay, patch_starts

        index = None
        if class_name:
            from ..objectives import resolve_class

            index = resolve_class(class_name, network.categories)
        bar = ProgressLine(f"{src.stem}: occluding", quiet=quiet)
        h, w = image.shape[-2:]
        positions = len(patch_starts(h, patch, stride)) * len(patch_starts(w, patch, stride))
        if positions > 20_000:
            warn(f"{positions} patch positions on {w}x{h} pixels will take a while; a smaller --size or larger --stride is faster", quiet=quiet)
        result = occlusion_map(
            network, image, index, patch=patch, stride=stride, batch_size=batch,
            progress=lambda d, t: bar.update(d, t, f"{d}/{t} positions"),
        )
        bar.close()
        heat = occlusion_overlay(image, result)
        cats = network.categories
        label = cats[result.class_index] if result.class_index < len(cats) else str(result.class_index)
        if plain:
            picture = heat
        else:
            import torch

            from ..visualize.grid import make_grid

            peak = float(result.drop.max())
            picture = make_grid(
                torch.stack([image[0].float().cpu(), heat]),
                labels=[f"{label}: p = {result.baseline:.3f}", f"largest drop {peak:+.3f}"],
            )
        _save(
            picture, out, network, source=src.text, force=force, quiet=quiet, command="occlusion",
            class_index=result.class_index, class_name=label, baseline=result.baseline,
            largest_drop=float(result.drop.max()), patch=patch, stride=stride,
            grid=[len(result.ys), len(result.xs)],
        )

    from ..visualize.layers import slug

    suffix = ".occlusion" + (f".{slug(class_name)}" if class_name else "")
    _each_image(images, suffix, output, force, quiet, size or None, max_pixels, flags, work, check)


@main.command()
@click.argument("images", nargs=-1, metavar="IMAGE...")
@click.option("--layer", "-l", required=True, metavar="LAYER:CH", help="The unit to explain, e.g. mixed4c:97 (or logits:N for class N).")
@click.option(
    "--rule", type=click.Choice(["guided", "deconvnet", "gradient"]), default="guided", show_default=True,
    help="How ReLUs pass gradient back: guided backpropagation, Zeiler & Fergus's deconvnet, or the plain gradient.",
)
@click.option(
    "--position", type=click.Choice(["max", "all"]), default="max", show_default=True,
    help="The channel's strongest position in the image, or its whole map.",
)
@click.option("--plain", is_flag=True, help="Write only the reconstruction, at the image's size.")
@_size_option
@_max_pixels_option
@_output_option
@_force_option
@runtime_options
def deconv(images, layer, rule, position, plain, size, max_pixels, output, force, quiet, **flags) -> None:
    """What in IMAGE... drives one unit: its gradient with the ReLU backward replaced.

    Writes IMAGE.deconv.LAYER_CH.png beside each image (the photo and the reconstruction;
    grey is zero).

    \b
    Examples:
      dreamer deconv photo.jpg --layer mixed4c:97
      dreamer deconv photo.jpg --layer mixed3a:10 --rule deconvnet
    """
    from ..visualize.layers import slug

    def check() -> None:
        _check_layer(_model(flags), layer, channel="required", what="deconv")

    def work(network, src, image, out) -> None:
        from ..visualize.deconv import reconstruct

        picture, facts = reconstruct(network, image, layer, rule=rule, position=position)
        if facts["activation"] == 0:
            warn(
                f"{facts['name']}:{facts['channel']} does not fire on {src.text} (its strongest activation is "
                f"{facts['activation']:.3g}), so the reconstruction is blank; try another channel "
                f"(`dreamer activations {src.text} --layer {facts['name']}` shows the strong ones)",
                quiet=quiet,
            )
        if not plain:
            import torch

            from ..visualize.grid import make_grid

            where = f" at {facts['position']}" if facts["position"] else ""
            picture = make_grid(
                torch.stack([image[0].float().cpu(), picture]),
                labels=[f"{facts['name']}:{facts['channel']} = {facts['activation']:.3g}{where}", f"{rule}"],
            )
        _save(
            picture, out, network, source=src.text, force=force, quiet=quiet, command="deconv",
            layer=facts["name"], channel=facts["channel"], rule=rule, position=position,
            unit=list(facts["position"]) if facts["position"] else None, activation=facts["activation"],
        )

    _each_image(images, f".deconv.{slug(layer)}", output, force, quiet, size, max_pixels, flags, work, check)


@main.command()
@click.option("--layer", "-l", metavar="LAYER[:CHANNELS]", help="Layer; LAYER:A-B picks the channels [default: the model's default layer].")
@option("--from", "first", type=click.IntRange(min=0), metavar="N", show_default="0", help="First channel.")
@option("--count", type=click.IntRange(min=1), metavar="N", show_default="16", help="How many channels.")
@option(
    "--size", "-s", type=click.IntRange(min=32), default=128, metavar="N", show_default="128",
    help="Side of each square canvas grown from noise (px); there is no input image.",
)
@option(
    "--steps", type=click.IntRange(min=1, max=MAX_STEPS), metavar="N",
    show_default="128 for fft, 20 per octave for pixel", help="Optimisation steps.",
)
@click.option("--param", type=click.Choice(["fft", "pixel"]), default="fft", show_default=True, help="Image parameterisation.")
@click.option("--transforms", type=click.Choice(["none", "standard"]), default="standard", show_default=True, help="Random transforms each step.")
@option(
    "--lr", type=FiniteFloat(min=0.0, max=MAX_LR, min_open=True), metavar="X", show_default=f"{_LR:g}",
    help="Learning rate (fft).",
)
@option("--octaves", type=click.IntRange(min=1), metavar="N", show_default="2", help="Octaves (pixel).")
@option("--seed", type=Seed(), default=0, metavar="N", show_default="0", help="Random seed, 0 to 2**64-1.")
@batch_option(8, "Channels")
@_columns_option
@_output_option
@_force_option
@runtime_options
def channels(layer, first, count, size, steps, param, transforms, lr, octaves, seed, batch, columns, output, force, quiet, **flags) -> None:
    """A contact sheet of channel visualisations of a layer, each grown from noise.

    Writes channels.LAYER.A-B.png in the current directory.

    \b
    Examples:
      dreamer channels --layer mixed4a --from 0 --count 16
      dreamer channels --layer mixed4c:97,139,465 --steps 256
    """
    from ..config import parse_layer_target
    from ..visualize.layers import slug

    target = parse_layer_target(layer or _default_layer(flags))
    if target.channels is not None:
        given = [flag for flag, value in (("--from", first), ("--count", count)) if value is not None]
        if given:
            raise UsageError(
                f"{' and '.join(given)} cannot be used with the channels in --layer {layer}",
                hint=f"give either --layer {target.layer}:A-B or --layer {target.layer} --from A --count N",
            )
        chosen = list(target.channels)
    else:
        first = 0 if first is None else first
        chosen = list(range(first, first + (16 if count is None else count)))
    model = _model(flags)
    info = _check_layer(model, target.layer, channel="none", what="channels")
    _check_channels(info, chosen)
    if chosen == list(range(chosen[0], chosen[-1] + 1)):
        span = f"{chosen[0]}-{chosen[-1]}" if len(chosen) > 1 else str(chosen[0])
    else:
        span = "_".join(map(str, chosen[:6])) + ("_etc" if len(chosen) > 6 else "")
    out = _single_output(Path.cwd(), "channels", f".{slug(info.name)}.{span}.png", output, force)

    from ..visualize.channels import channels_config, channels_sheet, grow_channels

    fields: dict = {"seed": seed, "transforms": transforms}
    if param == "fft":
        fields["steps"] = steps or 128
        if lr is not None:
            fields["learning_rate"] = lr
    else:
        fields["steps"] = steps or 20
        fields["octaves"] = octaves or 2
    config = channels_config(info.name, chosen, param=param, **fields)
    network = open_network(model, flags.get("weights"), flags.get("device"), quiet=quiet)
    bar = ProgressLine(f"{info.name}: {len(chosen)} channels", quiet=quiet)
    grown = grow_channels(
        network, info.name, chosen, size=(size, size), config=config, batch_size=batch,
        progress=lambda d, t: bar.update(d, t, f"step {d}/{t}"),
    )
    bar.close()
    check_finite(grown, config, what="the channel pictures")
    sheet = channels_sheet(grown, chosen, info.name, columns=columns)
    _save(sheet, out, network, source=f"noise:{size}x{size}", force=force, quiet=quiet, config=config,
          command="channels", layer=info.name, channels=chosen)
