"""Options shared between commands (defined once) and the steps every command shares:
resolving the config (default < preset < flag), checking sources, loading the model once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..config import MAX_DECAY, MAX_VIEWS
from ..errors import DreamerError, OutputError, UsageError, WeightsError

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
    "opacity": "opacity_cost",
    "backdrop": "backdrop",
    "views": "views",
    "crop": "crop",
    "decay": "decay",
    "grey": "grey_weight",
    "lr": "learning_rate",
    "precision": "precision",
    "tile": "tile",
    "seed": "seed",
    "model": "model",
}


class Option(click.Option):
    """A click option whose `show_default` text is shown as is: `[default: 4]`, not click's `(4)`.

    The shared options default to None (so a preset's value is not overridden) and say in
    `show_default` what a command really falls back to."""

    def get_help_record(self, ctx: click.Context):
        record = super().get_help_record(ctx)
        if record is None or not isinstance(self.show_default, str):
            return record
        opts, text = record
        return opts, text.replace(f"default: ({self.show_default})", f"default: {self.show_default}")


def option(*param_decls: str, **attrs: Any) -> Callable:
    """`click.option` with `Option` (use it for every option of dreamer's commands)."""
    return click.option(*param_decls, cls=Option, **attrs)


def _options(*decorators: Callable) -> Callable:
    def apply(f: Callable) -> Callable:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


# The flag each DreamConfig (and ZoomConfig) field is set with, so that errors name what the user
# typed (`--octave-scale`, not `octave_scale`). The CLI group rewrites ConfigErrors with it.
FIELD_FLAGS = {field: "--" + flag.replace("_", "-") for flag, field in _FLAG_FIELDS.items()}
FIELD_FLAGS.update({
    "layer": "--layer", "layers": "--layer", "class": "--class", "classes": "--class",
    "frames": "--frames", "cycle_every": "--cycle-every", "fps": "--fps", "zoom": "--zoom",
    "rotate": "--rotate", "shift": "--shift", "batch": "--batch", "batch_size": "--batch",
    "size": "--size", "max_pixels": "--max-pixels",
})


class FiniteFloat(click.FloatRange):
    """A float option that refuses nan and inf (click's FloatRange lets nan through every bound)."""

    name = "float"

    def convert(self, value, param, ctx):
        import math

        number = super().convert(value, param, ctx) if not isinstance(value, float) or math.isfinite(value) else value
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class FloatPair(click.ParamType):
    """Two numbers "LOW,HIGH" (e.g. --crop 0.5,1.5) -> a (low, high) tuple; the range is the config's to check."""

    name = "low,high"

    def convert(self, value, param, ctx):
        import math

        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        try:
            pair = tuple(float(p) for p in parts)
        except ValueError:
            pair = ()
        if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
            self.fail(f"{value!r} is not two numbers LOW,HIGH (e.g. 0.5,1.0)", param, ctx)
        return pair


class Seed(click.IntRange):
    """A random seed: an integer from 0 to 2**64-1 (torch's limit); help does not spell the range out."""

    name = "seed"

    def __init__(self) -> None:
        super().__init__(min=0, max=2**64 - 1)

    def _describe_range(self) -> str:
        return ""


# Largest values the CLI accepts for settings whose absurd values would exhaust memory or overflow
# float32 arithmetic (a --blur sigma of 1e11 allocates a kernel of 6e11 taps; Adam overflows near
# --lr 3e38). They are far beyond any useful value; preset files go through the same checks at run time.
MAX_BLUR = 1000.0
MAX_LR = 1000.0
MAX_TV = 1e6
MAX_OPACITY = 1e6
MAX_STEP_SIZE = 1e6
MAX_STEPS = 1_000_000


def _dream_defaults() -> dict[str, Any]:
    """What each shared dream option falls back to, as shown in help: DreamConfig's defaults."""
    from ..config import DreamConfig

    d = DreamConfig()
    return {
        "layer": f"the model's default layer ({', '.join(str(t) for t in d.layers)} on {d.model})",
        "octaves": d.octaves, "octave_scale": d.octave_scale,
        "steps": d.steps, "step_size": d.step_size, "jitter": d.jitter, "param": d.param,
        "transforms": d.transforms, "tv": d.tv_weight, "blur": d.blur, "opacity": d.opacity_cost,
        "backdrop": ",".join(d.backdrop) or "none (random backgrounds, grey result)", "lr": d.learning_rate,
        "views": d.views, "crop": ",".join(f"{v:g}" for v in d.crop), "decay": d.decay, "grey": d.grey_weight,
        "precision": d.precision, "tile": d.tile if d.tile is not None else "automatic", "seed": d.seed,
    }


def dream_options(f: Callable | None = None, /, **defaults: Any) -> Callable:
    """The dream settings shared by `run` and `zoom`: `@dream_options`, or
    `@dream_options(octaves=1, steps=5)` for a command whose own defaults differ from
    DreamConfig's (the help then shows the values the command really uses).

    Every option defaults to None: only values the user gives override a preset."""
    unknown = set(defaults) - set(_dream_defaults())
    if unknown:
        raise TypeError(f"dream_options: unknown option(s) {sorted(unknown)}")
    d = {**_dream_defaults(), **defaults}

    def show(key: str) -> str:
        value = d[key]
        return f"{value:g}" if isinstance(value, float) else str(value)

    decorator = _options(
        option("--preset", "-p", metavar="NAME|FILE", help="Start from a preset (see `dreamer presets`)."),
        option(
            "--layer", "-l", "layers", multiple=True, metavar="LAYER[:CH][=W]", show_default=show("layer"),
            help="Layer to amplify, repeatable: mixed4c, mixed4c:97, mixed4c:0-15, mixed5a=0.5; one neuron: mixed4c:97@center (see `dreamer layers`).",
        ),
        option(
            "--class", "-c", "classes", multiple=True, metavar="NAME|INDEX[=W]",
            help="ImageNet class to grow, repeatable: banana, 954, 'anemone fish=0.5' (see `dreamer classes`).",
        ),
        option(
            "--octaves", type=click.IntRange(min=1), metavar="N", show_default=show("octaves"),
            help="Number of octaves (scales).",
        ),
        option(
            "--octave-scale", type=FiniteFloat(min=1.0, min_open=True), metavar="X", show_default=show("octave_scale"),
            help="Size ratio between octaves.",
        ),
        option(
            "--steps", type=click.IntRange(min=1, max=MAX_STEPS), metavar="N", show_default=show("steps"),
            help="Gradient steps per octave; with --param fft, steps in all.",
        ),
        option(
            "--step-size", type=FiniteFloat(min=0.0, max=MAX_STEP_SIZE, min_open=True), metavar="X",
            show_default=show("step_size"), help="Step size in 0-255 pixel units.",
        ),
        option(
            "--jitter", type=click.IntRange(min=0), metavar="PX", show_default=show("jitter"),
            help="Random shift per step in pixels.",
        ),
        option(
            "--param", type=click.Choice(["pixel", "fft"]), show_default=show("param"), help="Image parameterisation.",
        ),
        option(
            "--transforms", type=click.Choice(["none", "standard", "crops"]), show_default=show("transforms"),
            help="Random transforms each step: standard adds scale and rotation; crops (fft) random "
            "crops of the canvas at the model's input size, as the class presets.",
        ),
        option(
            "--tv", type=FiniteFloat(min=0.0, max=MAX_TV), metavar="W", show_default=show("tv"),
            help="Total-variation penalty weight.",
        ),
        option(
            "--blur", type=FiniteFloat(min=0.0, max=MAX_BLUR), metavar="SIGMA", show_default=show("blur"),
            help="Gaussian blur (sigma, px) of each step's gradient.",
        ),
        option(
            "--opacity", type=FiniteFloat(min=0.0, max=MAX_OPACITY), metavar="W", show_default=show("opacity"),
            help="Price of opacity (fft, --transforms crops): what does not serve the objective fades "
            "to grey, leaving the object alone, as the class presets (0: off).",
        ),
        option(
            "--backdrop", metavar="#RRGGBB[,#RRGGBB]", show_default=show("backdrop"),
            help="With --opacity: the colour (two: a gradient from top to bottom) the image is laid "
            "over while it grows and at the end, e.g. a sky '#5985bf,#8cb8f2'; none: random backgrounds.",
        ),
        option(
            "--lr", type=FiniteFloat(min=0.0, max=MAX_LR, min_open=True), metavar="X", show_default=show("lr"),
            help="Learning rate of the fft parameterisation.",
        ),
        option(
            "--views", type=click.IntRange(min=1, max=MAX_VIEWS), metavar="N", show_default=show("views"),
            help="fft: randomly transformed views of the image per step, their objectives averaged.",
        ),
        option(
            "--crop", type=FloatPair(), metavar="LOW,HIGH", show_default=show("crop"),
            help="fft, --transforms crops: side of a crop as a fraction of the canvas's shorter side; "
            "above 1 (with --opacity) the whole canvas is seen small, as the class presets.",
        ),
        option(
            "--decay", type=FiniteFloat(min=0.0, max=MAX_DECAY), metavar="X", show_default=show("decay"),
            help="fft: the Fourier image's spectrum falls as 1/frequency**X (larger: coarser shapes).",
        ),
        option(
            "--grey", type=FiniteFloat(min=0.0, max=MAX_TV), metavar="W", show_default=show("grey"),
            help="fft: pull towards mid-grey (tames burnt-out colours).",
        ),
        option(
            "--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), show_default=show("precision"),
            help="Arithmetic precision: auto picks bf16 on CUDA, fp32 elsewhere.",
        ),
        option(
            "--tile", type=int, metavar="PX", show_default=show("tile"),
            help="Dream in tiles of PX pixels (for huge images).",
        ),
        option(
            "--seed", type=Seed(), metavar="N", show_default=show("seed"), help="Random seed, 0 to 2**64-1.",
        ),
    )
    return decorator(f) if f is not None else decorator


runtime_options = _options(
    option("--model", "-m", metavar="NAME", show_default="googlenet", help="Model to use."),
    option(
        "--weights", "-w", metavar="pretrained|random[:SEED]|PATH", show_default="pretrained",
        help="Weights: pretrained (downloaded once), random (untrained, for tests), or a state-dict file.",
    ),
    option("--device", "-d", metavar="auto|cpu|cuda[:N]|mps", show_default="auto", help="Device."),
    option(
        "--threads", type=click.IntRange(min=1), metavar="N", expose_value=False, callback=lambda _c, _p, n: _threads(n),
        show_default="OMP_NUM_THREADS if set, else torch's choice", help="CPU threads for torch (fewer help on a busy machine).",
    ),
    option("--quiet", "-q", is_flag=True, help="No progress or warnings."),
)


def _threads(n: int | None) -> None:
    # applied while the flags are read, before any work (torch is imported only when given)
    if n is not None:
        from ..devices import set_threads

        set_threads(n)

# Options with one meaning in every command that has them (see docs: one name, one meaning).
output_option = option(
    "--output", "-o", type=click.Path(), metavar="PATH",  # a str: a trailing / must survive
    help="Output file; a folder (an existing one, or PATH ending in /) for the default name inside it, "
    "and for several inputs.",
)
force_option = option("--force", "-f", is_flag=True, help="Overwrite an existing output (never an input).")
max_pixels_option = option(
    "--max-pixels", type=click.IntRange(min=1), metavar="N", show_default="100000000",
    help="Largest image accepted (or made, after --size), in pixels.",
)
columns_option = option("--columns", type=click.IntRange(min=1), metavar="N", show_default="about square", help="Grid cells per row.")


def size_option(default: int | None = None, *, minimum: int = 1, extra: str = "") -> Callable:
    """`--size N`: scale each input's longest side to N pixels first (noise sources are made at
    that size). `default` is the command's own default (None: keep the input's size)."""
    return option(
        "--size", "-s", type=click.IntRange(min=minimum), default=default, metavar="N",
        show_default=str(default) if default is not None else "the input's size",
        help="Scale each input's longest side to N pixels first." + (f" {extra}" if extra else ""),
    )


def batch_option(default: int, what: str) -> Callable:
    """`--batch N`: how many `what` go through the network together."""
    return option(
        "--batch", type=click.IntRange(min=1), default=default, metavar="N", show_default=str(default),
        help=f"{what} per forward pass (more is faster, needs more memory).",
    )


def cell_option(default: int, minimum: int) -> Callable:
    """`--cell PX`: the side of one picture in a grid (not the dream --tile)."""
    return option(
        "--cell", type=click.IntRange(min=minimum), default=default, metavar="PX", show_default=str(default),
        help="Side of each picture in the grid (px).",
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

        try:
            preset = load_preset(flags["preset"])
        except RecursionError:
            from ..errors import PresetError

            raise PresetError(f"cannot read preset {flags['preset']!r}: its TOML is nested too deeply") from None
        base = preset.config
    changes: dict[str, Any] = {}
    for flag, fieldname in _FLAG_FIELDS.items():
        if flags.get(flag) is not None:
            changes[fieldname] = flags[flag]
    if flags.get("layers"):
        changes["layers"] = tuple(parse_layer_target(s) for s in flags["layers"])
    if flags.get("classes"):
        changes["classes"] = tuple(parse_class_target(s) for s in flags["classes"])
    if preset is None and not flags.get("layers") and not flags.get("classes") and flags.get("model"):
        # nothing to dream named: the model's own default layer (DreamConfig's is GoogLeNet's)
        from ..models import get_spec

        changes["layers"] = (parse_layer_target(get_spec(flags["model"]).default_layer),)
    # naming only layers (or only classes) names the whole objective (DreamConfig.override)
    return base.override(**changes), preset


def scaled_size(hw: tuple[int, int], size: int | None) -> tuple[int, int]:
    """(height, width) after scaling the longest side to `size` (unchanged when None); the rule
    is `dreamer.io.images.scaled_size`."""
    from ..io.images import scaled_size as rule

    return rule(hw, size)


def _check_pixels(text: str, hw: tuple[int, int], size: int | None, max_pixels: int | None) -> None:
    """A picture dreamer is asked to make (noise, or an image after --size) must obey --max-pixels
    (`dreamer.io.images.check_pixels`, the one rule for every command and the library)."""
    from ..io.images import check_pixels

    check_pixels(text, hw, size=size, max_pixels=max_pixels)


@dataclass(frozen=True)
class Source:
    """An input: an image file, or noise of a size (height, width) (already scaled by --size)."""

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


def parse_sources(
    texts: tuple[str, ...] | list[str], *, size: int | None = None, max_pixels: int | None = None
) -> list[Source]:
    """Check every source before any work: files exist and are files; noise specs are valid
    and, at the size `size` makes them, within `max_pixels`. A noise source's size is the one
    it will be made at (`noise:384x384` with `size` 128 is 128x128)."""
    from ..io.images import parse_noise_source

    sources = []
    for text in texts:
        hw = parse_noise_source(text)
        if hw is not None:
            hw = scaled_size(hw, size)
            _check_pixels(text, hw, size, max_pixels)
            sources.append(Source(text, noise_hw=hw))
            continue
        path = Path(text).expanduser()
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as exc:  # a name too long, a loop of links ...
            raise UsageError(f"cannot use {shown(text)} as an image: {exc.strerror or exc}") from None
        if not exists:
            raise UsageError(f"no such file: {shown(text)}", hint="give an image file, or noise:WIDTHxHEIGHT")
        if is_dir:
            raise UsageError(f"{shown(text)} is a directory, not an image file")
        if size is not None:
            _check_scaled_file(text, path, size, max_pixels)
        sources.append(Source(text, path=path))
    return sources


def _check_scaled_file(text: str, path: Path, size: int, max_pixels: int | None) -> None:
    """An absurd --size is refused from the image's header, before any model loads. A file that
    cannot be read is left for its turn (with several images, the others are still made)."""
    from ..errors import DreamerError
    from ..io.images import check_image

    try:
        hw = check_image(path, max_pixels=max_pixels)
    except DreamerError:
        return
    _check_pixels(text, scaled_size(hw, size), size, max_pixels)


def load_source(
    source: Source, *, size: int | None, seed: int, max_pixels: int | None = None, noise_amplitude: float = 0.1
):
    """The source as a (1,3,H,W) [0,1] CPU tensor (noise is seeded by `seed`, grey ± `noise_amplitude`).

    The size it ends up at after `size` is held to `max_pixels` too (default `DEFAULT_MAX_PIXELS`),
    so an absurd `--size` is refused with a message instead of exhausting memory."""
    from ..io.images import load_image, make_noise, resize

    if source.is_noise:
        hw = scaled_size(source.noise_hw, size)  # type: ignore[arg-type]
        _check_pixels(source.text, hw, size, max_pixels)
        return make_noise(hw, seed=seed, amplitude=noise_amplitude)
    image = load_image(source.path, max_pixels=max_pixels)
    if size is None:
        return image
    hw = scaled_size(tuple(image.shape[-2:]), size)
    _check_pixels(source.text, hw, size, max_pixels)
    return resize(image, hw)


def shown(text: object) -> str:
    """`text` for a one-line message: control characters (a newline in a file name) escaped."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


# A name dreamer writes must leave room for its temporary twin (".NAME.xxxxxxxx.ext", see save_image).
_TEMP_NAME_EXTRA = 12


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) allowed in `folder` (or its nearest existing parent)."""
    import os

    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _fits(name: str, limit: int) -> bool:
    import os

    return len(os.fsencode(name)) + _TEMP_NAME_EXTRA <= limit


def _short_name(stem: str, tail: str, limit: int) -> str:
    """`stem + tail`, the stem cut (by characters) so that the name fits in `limit` bytes."""
    while stem and not _fits(stem + tail, limit):
        stem = stem[:-1]
    return stem + tail


def _check_name(path: Path) -> None:
    """Refuse an output whose file name is too long for its file system, before any work."""
    import os

    limit = _name_max(path.parent)
    if not _fits(path.name, limit):
        size = len(os.fsencode(path.name))
        short = shown(path.name if len(path.name) <= 40 else path.name[:37] + "...")
        raise OutputError(
            f"cannot write {short}: the file name is {size} bytes, too long for this file system "
            f"(at most {limit - _TEMP_NAME_EXTRA} for an output)",
            hint="give a shorter -o name",
        )


def _free_name(folder: Path, stem: str, tail: str, taken: set[Path], force: bool) -> Path:
    """`folder/stem+tail` (shortened to fit); when it exists (and not `force`) or this call
    already uses it, the first free `stem+tail` with -2, -3 ... before the extension."""
    limit = _name_max(folder)
    base, ext = tail.rsplit(".", 1) if "." in tail else (tail, "")
    ext = "." + ext if ext else ""
    n = 1
    while True:
        suffix = base + (f"-{n}" if n > 1 else "") + ext
        path = folder / _short_name(stem, suffix, limit)
        if path.absolute() not in taken and (not path.exists() or (force and n == 1)):
            return path
        n += 1


def plan_outputs(
    sources: list[Source], output: str | Path | None, *, force: bool, tail: str, inputs=()
) -> list[Path]:
    """Where each source's result goes, all checked before any work; nothing is created yet.

    - no `output`: `STEM<tail>` beside each input (the current folder for noise);
    - `output` a folder (existing, written with a trailing /, or with several sources): the
      same names inside it (the folder is made by `make_folders` when the first result is saved);
    - else `output` is the file for the one source (an existing one only with `force`).

    Names dreamer picks never overwrite: a taken name becomes `STEM<tail>` with -2, -3 ... (with
    `force`, the plain name is overwritten). Inputs are never outputs. A name too long for the
    file system is shortened (input-derived) or refused (`-o`).
    """
    defaults = [(s.path.parent if s.path is not None else Path.cwd(), s.stem) for s in sources]
    inputs = list(inputs) or [s.path for s in sources if s.path is not None]
    return plan_named_outputs(defaults, output, force=force, tail=tail, inputs=inputs)


def plan_named_outputs(
    defaults: list[tuple[Path, str]], output: str | Path | None, *, force: bool, tail: str, inputs=()
) -> list[Path]:
    """`plan_outputs` for outputs named `STEM<tail>` in a default folder, one per (folder, STEM)."""
    import os

    from ..io.images import OUTPUT_FORMATS, check_output_path

    inputs = list(inputs)
    count = len(defaults)
    folder: Path | None = None
    if output is not None:
        text = str(output)
        out = Path(text).expanduser()
        try:
            is_dir, exists = out.is_dir(), out.exists()
        except OSError as exc:
            raise OutputError(f"cannot write {shown(text)[:60]}: {exc.strerror or exc}") from None
        wants_folder = text.endswith(("/", os.sep)) or is_dir
        if count > 1 and not wants_folder:
            if out.suffix.lower() in OUTPUT_FORMATS:
                raise UsageError(
                    f"-o {shown(text)} names one file but {count} images were given",
                    hint="with several images, -o names a folder",
                )
            wants_folder = True
        if wants_folder:
            if exists and not is_dir:
                raise UsageError(f"-o {shown(text)} is a file, not a folder")
            if not exists:
                _check_new_folder(out)
            folder = out
        else:
            if not out.suffix:
                raise UsageError(
                    f"-o {shown(text)} has no extension",
                    hint=f"name a file ({', '.join(OUTPUT_FORMATS)}), or end it with / to write into a folder",
                )
            _check_name(out)
            return [check_output_path(out, force=force, inputs=inputs)]
    paths: list[Path] = []
    taken: set[Path] = set()
    for default_folder, stem in defaults:
        where = folder if folder is not None else default_folder
        path = _free_name(where, stem, tail, taken, force)
        taken.add(path.absolute())
        if where.exists():
            check_output_path(path, force=force, inputs=inputs)
        paths.append(path)
    return paths


def _check_new_folder(folder: Path) -> None:
    """A folder that `make_folders` will create: its parent must exist and be writable."""
    import os

    _check_name(folder)
    parent = folder.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"cannot create the folder {shown(folder)}: {shown(parent)} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        why = "a read-only file system" if _read_only(parent) else "not writable"
        raise OutputError(f"cannot create the folder {shown(folder)}: {shown(parent)} is {why}")


def _read_only(path: Path) -> bool:
    import os

    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def make_folders(path: Path) -> None:
    """Create the output folder `plan_outputs` chose for `path`, if missing (OutputError if it cannot)."""
    folder = path.parent
    if folder.is_dir():
        return
    try:
        folder.mkdir()
    except FileExistsError:
        if not folder.is_dir():
            raise OutputError(f"cannot create the folder {shown(folder)}: a file has that name") from None
    except OSError as exc:
        raise OutputError(f"cannot create the folder {shown(folder)}: {exc.strerror or exc}") from None


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

    for out in {o.parent: o for o in outputs}.values():
        make_folders(out)  # an -o folder that cannot be made is one error, not one per image
    failures = 0
    for n, (src, out) in enumerate(zip(sources, outputs), 1):
        try:
            work(n, src, out)
        except DreamerError as exc:
            if len(sources) == 1:
                raise
            from . import CommandError

            failures += 1
            click.echo(f"Error: {shown(src.text)}: {CommandError(exc).message}", err=True)
    if failures:
        raise click.exceptions.Exit(1)


def open_network(model: str, weights: str | None, device: str | None, *, quiet: bool):
    """Resolve the device and load the model once (with a warning for random weights)."""
    from ..devices import resolve_device
    from ..models import load_model

    dev = resolve_device(device or "auto")
    network = load_model(model, weights=weights or "pretrained", device=dev, progress=not quiet)
    _check_weights(network)
    if network.weights.startswith("random"):
        warn(
            f"using untrained weights ({network.weights}): the result shows a random network, "
            "not what a pretrained one sees",
            quiet=quiet,
        )
    return network


def _check_weights(network) -> None:
    """Weights with NaN or infinite values can only make NaN pictures: refuse them by name."""
    import torch

    with torch.no_grad():
        for name, tensor in network.module.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise WeightsError(
                    f"the weights {shown(network.weights)} hold NaN or infinite values (in {name}); "
                    "the network cannot compute anything with them",
                    hint="use other weights (a damaged or badly trained file?)",
                )


class NonFiniteError(DreamerError):
    """A result with NaN or infinite values (never saved as a black picture)."""


# settings that make the optimisation diverge when absurdly large: (flag, config field, sensible value)
_DIVERGERS = (("--lr", "learning_rate", 0.05), ("--step-size", "step_size", 1.5), ("--tv", "tv_weight", 1.0))


def check_finite(result, config=None, *, what: str = "the result") -> None:
    """Raise NonFiniteError (exit 1) when `result` holds NaN or infinity, naming the likely cause:
    a setting far above its sensible value (`config`), else the numbers the network produced."""
    import torch

    if bool(torch.isfinite(result).all()):
        return
    causes = []
    if config is not None:
        for flag, field, sensible in _DIVERGERS:
            value = getattr(config, field, None)
            if isinstance(value, (int, float)) and value > 1000 * sensible:
                causes.append(f"{flag} {value:g}")
    if causes:
        raise NonFiniteError(
            f"{what} has NaN or infinite values: the optimisation diverged with {', '.join(causes)}",
            hint="use a smaller value (the defaults: --lr 0.05, --step-size 1.5, --tv 0)",
        )
    raise NonFiniteError(
        f"{what} has NaN or infinite values: the network's numbers overflowed",
        hint="try --precision fp32, smaller --lr/--step-size, or other weights",
    )

