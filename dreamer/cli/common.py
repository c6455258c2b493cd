"""Options shared between commands (defined once) and the steps every command shares:
resolving the config (default < preset < flag), checking sources, loading the model once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..errors import ImageError, UsageError

__all__ = [
    "dream_options",
    "runtime_options",
    "config_from_flags",
    "Source",
    "parse_sources",
    "open_network",
    "each_source",
    "check_targets",
    "warn",
]

# flag name -> DreamConfig field, for the flags that map one to one
_FLAG_FIELDS = {
    "octaves": "octaves",
    "octave_scale": "octave_scale",
    "steps": "steps",
    "step_size": "step_size",
    "jitter": "jitter",
    "param": "param",
    "transforms": "transforms",
    "tv": "tv_weight",
    "blur": "blur",
    "lr": "learning_rate",
    "precision": "precision",
    "tile": "tile",
    "seed": "seed",
    "model": "model",
}


def _options(*decorators: Callable) -> Callable:
    def apply(f: Callable) -> Callable:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


# Every option defaults to None: only values the user gives override the preset.
dream_options = _options(
    click.option("--preset", "-p", metavar="NAME|FILE", help="Start from a preset (see `dreamer presets`)."),
    click.option(
        "--layer", "-l", "layers", multiple=True, metavar="LAYER[:CH][=W]",
        help="Layer to amplify, repeatable: mixed4c, mixed4c:97, mixed4c:0-15, mixed5a=0.5 (see `dreamer layers`).",
    ),
    click.option(
        "--class", "-c", "classes", multiple=True, metavar="NAME|INDEX[=W]",
        help="ImageNet class to grow, repeatable: banana, 954, 'anemone fish=0.5' (see `dreamer classes`).",
    ),
    click.option("--octaves", type=int, help="Number of octaves (scales) [default 4]."),
    click.option("--octave-scale", type=float, help="Size ratio between octaves, > 1 [default 1.4]."),
    click.option("--steps", type=int, help="Gradient steps per octave; with --param fft, steps in all [default 10]."),
    click.option("--step-size", type=float, help="Step size in 0-255 pixel units [default 1.5]."),
    click.option("--jitter", type=int, help="Random shift per step in pixels [default 32]."),
    click.option("--param", type=click.Choice(["pixel", "fft"]), help="Image parameterisation [default pixel]."),
    click.option(
        "--transforms", type=click.Choice(["none", "standard"]),
        help="Random transforms each step: standard adds scale and rotation [default none].",
    ),
    click.option("--tv", type=float, help="Total-variation penalty weight [default 0]."),
    click.option("--blur", type=float, help="Gaussian blur (sigma, px) of each step's gradient [default 0]."),
    click.option("--lr", type=float, help="Learning rate of the fft parameterisation [default 0.05]."),
    click.option(
        "--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
        help="Arithmetic precision: auto picks bf16 on CUDA, fp32 elsewhere [default auto].",
    ),
    click.option("--tile", type=int, help="Tile size in pixels for huge images [default automatic]."),
    click.option("--seed", type=int, help="Random seed [default 0]."),
)

runtime_options = _options(
    click.option("--model", "-m", metavar="NAME", help="Model [default googlenet]."),
    click.option(
        "--weights", "-w", metavar="pretrained|random[:SEED]|PATH",
        help="Weights: pretrained (downloaded once), random (untrained, for tests), or a state-dict file.",
    ),
    click.option("--device", "-d", metavar="auto|cpu|cuda[:N]|mps", help="Device [default auto]."),
    click.option("--quiet", "-q", is_flag=True, help="No progress or warnings."),
)


def warn(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        click.echo(f"Warning: {message}", err=True)


def config_from_flags(flags: dict[str, Any]):
    """The resolved DreamConfig and the preset (or None): default < preset < explicit flags."""
    from ..config import DreamConfig, parse_class_target, parse_layer_target

    preset = None
    base = DreamConfig()
    if flags.get("preset"):
        from ..presets import load_preset

        preset = load_preset(flags["preset"])
        base = preset.config
    changes: dict[str, Any] = {}
    for flag, fieldname in _FLAG_FIELDS.items():
        if flags.get(flag) is not None:
            changes[fieldname] = flags[flag]
    if flags.get("layers"):
        changes["layers"] = tuple(parse_layer_target(s) for s in flags["layers"])
        if not flags.get("classes"):
            changes["classes"] = ()
    if flags.get("classes"):
        changes["classes"] = tuple(parse_class_target(s) for s in flags["classes"])
        if not flags.get("layers"):
            changes["layers"] = ()
    return (base.replace(**changes) if changes else base), preset


@dataclass(frozen=True)
class Source:
    """An input: an image file, or noise of a size (height, width)."""

    text: str
    path: Path | None = None
    noise_hw: tuple[int, int] | None = None

    @property
    def is_noise(self) -> bool:
        return self.noise_hw is not None

    @property
    def stem(self) -> str:
        if self.path is not None:
            return self.path.stem
        h, w = self.noise_hw  # type: ignore[misc]
        return f"noise_{w}x{h}"


def parse_sources(texts: tuple[str, ...] | list[str]) -> list[Source]:
    """Check every source before any work: files exist and are files; noise specs are valid."""
    from ..io.images import parse_noise_source

    sources = []
    for text in texts:
        hw = parse_noise_source(text)
        if hw is not None:
            sources.append(Source(text, noise_hw=hw))
            continue
        path = Path(text).expanduser()
        if not path.exists():
            raise UsageError(f"no such file: {text}", hint="give an image file, or noise:WIDTHxHEIGHT")
        if path.is_dir():
            raise UsageError(f"{text} is a directory, not an image file")
        sources.append(Source(text, path=path))
    return sources


def load_source(
    source: Source, *, size: int | None, seed: int, max_pixels: int | None = None, noise_amplitude: float = 0.1
):
    """The source as a (1,3,H,W) [0,1] CPU tensor (noise is seeded by `seed`, grey ± `noise_amplitude`).

    The size it ends up at after `size` is held to `max_pixels` too (default `DEFAULT_MAX_PIXELS`),
    so an absurd `--size` is refused with a message instead of exhausting memory."""
    from ..io.images import DEFAULT_MAX_PIXELS, load_image, make_noise, resize

    limit = max_pixels or DEFAULT_MAX_PIXELS

    def scaled(hw: tuple[int, int]) -> tuple[int, int]:
        if size is None:
            return hw
        h, w = hw
        f = size / max(h, w)
        hw = (max(1, round(h * f)), max(1, round(w * f)))
        if hw[0] * hw[1] > limit:
            raise ImageError(
                f"--size {size} would make {source.text} {hw[1]}x{hw[0]} = {hw[0] * hw[1]} pixels, "
                f"more than the limit of {limit}; pass a smaller --size, or --max-pixels N to raise the limit"
            )
        return hw

    if source.is_noise:
        return make_noise(scaled(source.noise_hw), seed=seed, amplitude=noise_amplitude)  # type: ignore[arg-type]
    image = load_image(source.path, max_pixels=max_pixels)
    if size is None:
        return image
    return resize(image, scaled(tuple(image.shape[-2:])))


def check_targets(config) -> None:
    """Check the config's model, layer names, channels and classes against the model's spec
    before anything is loaded: a typo is reported as a typo, not after a download."""
    from ..models import get_spec
    from ..objectives import build_objective

    build_objective(get_spec(config.model), config.layers, config.classes)


def each_source(sources: list[Source], outputs: list[Path], work: Callable[[int, Source, Path], None]) -> None:
    """Run `work(number, source, output)` for each source (numbered from 1). With several
    sources a failing one is reported and the others still run; the exit code is then 1."""
    from ..errors import DreamerError

    failures = 0
    for n, (src, out) in enumerate(zip(sources, outputs), 1):
        try:
            work(n, src, out)
        except DreamerError as exc:
            if len(sources) == 1:
                raise
            failures += 1
            click.echo(f"Error: {src.text}: {exc}", err=True)
    if failures:
        raise click.exceptions.Exit(1)


def open_network(model: str, weights: str | None, device: str | None, *, quiet: bool):
    """Resolve the device and load the model once (with a warning for random weights)."""
    from ..devices import resolve_device
    from ..models import load_model

    dev = resolve_device(device or "auto")
    network = load_model(model, weights=weights or "pretrained", device=dev, progress=not quiet)
    if network.weights.startswith("random"):
        warn(
            f"using untrained weights ({network.weights}): the result shows a random network, "
            "not what a pretrained one sees",
            quiet=quiet,
        )
    return network
