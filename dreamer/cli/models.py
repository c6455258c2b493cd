"""`dreamer models`: the registry's networks, where their weights come from and whether they
are here; `dreamer models NAME` for one model's details (its roles, input, weights file)."""

from __future__ import annotations

import click

from . import main


@main.command()
@click.argument("name", required=False, metavar="[NAME]")
def models(name: str | None) -> None:
    """List the models: input size, layers, default layer, weights and whether they work offline.

    \b
    Examples:
      dreamer models
      dreamer models vgg16                     details: roles, normalisation, weights file
      dreamer run photo.jpg --model vgg16      use one (every command takes --model)
    """
    from ..models import get_spec, list_models

    if name is not None:
        _details(get_spec(name))
        return
    rows = []
    for model in list_models():
        spec = get_spec(model)
        where, offline = _weights(spec)
        rows.append((spec.name, str(spec.input_size), str(len(spec.layers)), spec.default_layer, where, offline))
    header = ("model", "input", "layers", "default", "weights", "offline")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    click.echo("Use one with --model NAME; `dreamer layers --model NAME` lists its layers, `dreamer models NAME` its details.")


def _weights(spec) -> tuple[str, str]:
    """(where the pretrained weights come from, whether they are here) for the table."""
    from ..models.weights import weights_status

    _, here = weights_status(spec)
    if spec.packaged is not None:
        return f"package {spec.packaged.requirement}", "yes" if here else f"no: {spec.packaged.install}"
    if spec.weights_url is not None:
        return "download " + spec.weights_url.rsplit("/", 1)[-1], "yes (cached)" if here else "no: downloads once"
    return "--weights PATH only", "no"


def _details(spec) -> None:
    from ..models import cache_path
    from ..models.spec import ROLES

    click.echo(f"{spec.name}: {spec.description}")
    click.echo(f"input      RGB, trained at {spec.input_size} px, at least {spec.min_size} px per side")
    click.echo(f"normalise  (x - {_triple(spec.mean)}) / {_triple(spec.std)} for x in [0, 1]")
    click.echo(f"layers     {len(spec.layers)} (`dreamer layers --model {spec.name}`), default {spec.default_layer}")
    roles = spec.role_layers()
    click.echo("roles      " + ", ".join(f"@{r} = {roles[r]}" for r in ROLES if r in roles))
    click.echo(f"classes    {len(spec.categories)}" + (f" ({spec.categories_note})" if spec.categories_note else ""))
    where, offline = _weights(spec)
    if spec.packaged is not None:
        click.echo(f"weights    from the installed package {spec.packaged.requirement}: {offline}")
    elif spec.weights_url is not None:
        click.echo(f"weights    {spec.weights_url}")
        click.echo(f"cache      {cache_path(spec.weights_url)} ({'present' if offline.startswith('yes') else 'not yet downloaded'})")
    else:
        click.echo(f"weights    {where}")


def _triple(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
