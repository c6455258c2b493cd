"""`dreamer presets` (list, show) and `dreamer classes` (list and search ImageNet classes)."""

from __future__ import annotations

import click

from ..errors import DreamerError, UsageError
from . import main


@main.group(invoke_without_command=True)
@click.pass_context
def presets(ctx: click.Context) -> None:
    """List the bundled presets: name, start image and description.

    \b
    Examples:
      dreamer run photo.jpg --preset high-level     dream on a photo
      dreamer run --preset banana                   grow a banana from noise
      dreamer run photo.jpg --preset banana         turn a photo into bananas
      dreamer run --preset banana --steps 256 --size 256   flags override the preset
      dreamer presets show banana > my.toml         save, edit, then --preset my.toml
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..presets import list_presets

    found = list_presets()
    width = max(len(p.name) for p in found)
    click.echo(f"{'name':<{width}}  {'start':<14} description")
    for p in found:
        click.echo(f"{p.name:<{width}}  {p.start or '(your photo)':<14} {p.description}")
    click.echo("Use one with `dreamer run [IMAGE] --preset NAME`; see its settings with `dreamer presets show NAME`.")


@presets.command()
@click.argument("name", metavar="NAME|FILE")
@click.option("--model", "-m", metavar="NAME", help="Show it on this model: which layer each role (@deep ...) is.")
def show(name: str, model: str | None) -> None:
    """Print a preset's resolved settings as TOML (save it, edit it, use it with --preset FILE).

    \b
    Examples:
      dreamer presets show high-level
      dreamer presets show high-level --model vgg16
    """
    from ..presets import for_model, load_preset, preset_to_toml

    preset = load_preset(name)
    if model is not None:
        preset = for_model(preset, model)
    click.echo(preset_to_toml(preset), nl=False)


@main.command()
@click.argument("text", required=False, metavar="[TEXT|INDEX]")
@click.option("--model", "-m", default="googlenet", show_default=True, help="Model whose classes to list.")
def classes(text: str | None, model: str) -> None:
    """List the ImageNet classes (index and name), or those whose name contains TEXT.

    Case, spaces, '_' and '-' do not matter. Use a name or an index with --class:

    \b
      dreamer classes fish
      dreamer run noise:384x384 --class "anemone fish" --param fft --transforms standard --steps 512
    """
    from ..classes import model_categories, search_classes
    from ..errors import closest

    from ..models import get_spec

    categories = model_categories(model)
    if not categories:
        raise DreamerError(f"model {model!r} has no class names")
    note = get_spec(model).categories_note
    if note:
        click.echo(f"Note: {note}", err=True)
    hits = search_classes(text, categories)
    if not hits:
        near = closest(text or "", categories)
        message = f"no class name contains {text!r}"
        if text and text.strip().isdigit():
            message = f"no class has index {text.strip()} (0-{len(categories) - 1})"
        if near:
            message += "; closest: " + ", ".join(repr(n) for n in near)
        raise UsageError(message, hint="`dreamer classes` lists all of them")  # a name or index typed: usage (2)
    for index, name in hits:
        click.echo(f"{index:>4}  {name}")
