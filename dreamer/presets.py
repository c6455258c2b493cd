"""Presets: named TOML files of dream settings, bundled with the package or the user's own.

A preset file is flat TOML: a one-line ``description``, an optional ``start`` (the image
used when none is given: ``noise:WIDTHxHEIGHT`` or a photo's path, relative to the file),
and any `DreamConfig` field (``layers = ["mixed4c", "mixed5a=0.5"]``, ``octaves = 4`` ...).
A layer may be named by its role instead (``"@deep"``, ``"@middle=0.5"``): each model says
which of its layers is its ``@shallow``, ``@lower``, ``@middle``, ``@upper`` and ``@deep``
one (and ``@default``, ``@logits``), so such a preset works with every model.
Fields left out keep their defaults; a preset that names ``classes`` but not ``layers``
has no layer terms. Unknown keys, wrong types and out-of-range values are `PresetError`s
that name the file, the key and what is allowed.

Bundled presets live in the ``dreamer.presets_data`` package (the repository's
``presets/`` folder, installed under that name; read in place from a source checkout). Reading presets needs neither torch nor Pillow.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DreamConfig, parse_class_target, parse_layer_target
from .errors import ConfigError, PresetError, UnknownNameError, UsageError, closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "Preset",
    "PRESET_KEYS",
    "list_presets",
    "preset_names",
    "load_preset",
    "check_preset",
    "parse_preset",
    "preset_to_toml",
    "for_model",
    "resolved_roles",
]

_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(DreamConfig))
#: Every key a preset file may have.
PRESET_KEYS = ("description", "start", *_CONFIG_FIELDS)

_NOISE_RE = re.compile(r"noise:(\d+)[xX](\d+)")
_BUNDLED_PACKAGE = "dreamer.presets_data"

# One comment per key, written by `preset_to_toml` so a saved preset explains itself.
_COMMENTS = {
    "description": "one line shown by `dreamer presets`",
    "start": "image used when none is given: noise:WIDTHxHEIGHT, or a photo (path relative to this file)",
    "model": "network (see `dreamer models`); --model overrides it",
    "layers": 'layers to amplify: "NAME", "NAME:CHANNELS" (97, 10,20 or 0-15), "NAME=WEIGHT"; '
    '"@ROLE" is the model\'s layer for a role: @shallow @lower @middle @upper @deep',
    "classes": 'ImageNet classes to grow: "banana", "954", "anemone fish=0.5" (see `dreamer classes`)',
    "octaves": "pixel: number of scales, each octave_scale larger than the last",
    "octave_scale": "pixel: size ratio between octaves, > 1",
    "steps": "pixel: gradient steps per octave; fft: steps in all",
    "step_size": "pixel: mean change of a step, in 0-255 pixel units",
    "jitter": "random shift per step, pixels",
    "param": 'image parameterisation: "pixel" (classic DeepDream) or "fft" (Fourier, for growing from noise)',
    "decorrelate": "fft: optimise decorrelated colours rather than R, G, B",
    "transforms": '"none" (only the jitter shift), "standard" (shift, random scale and rotation) or '
    '"crops" (fft: random square crops of the canvas at the model\'s input size, rotated, mirrored, noisy)',
    "learning_rate": "fft: Adam learning rate",
    "views": "fft: randomly transformed views of the image per step, their objectives averaged",
    "crop": "fft, transforms crops: [low, high] side of a crop as a fraction of the canvas's shorter side "
    "(above 1, with opacity: the whole canvas seen from further away)",
    "decay": "fft: the Fourier image's spectrum falls as 1/frequency**decay (larger: coarser shapes)",
    "tv_weight": "total-variation penalty (smoother images), >= 0",
    "blur": "Gaussian blur sigma (pixels) of each step's gradient, >= 0",
    "grey_weight": "fft: penalty on the mean squared distance from mid-grey (tames burnt-out colours), >= 0",
    "opacity_cost": "fft, transforms crops: > 0 adds an opacity channel whose mean costs this much; "
    "what does not serve the objective fades to grey, the object stands alone",
    "backdrop": 'with opacity: one or two colours "#rrggbb" (two: top to bottom) to lay the image over '
    "instead of random backgrounds and grey, e.g. a sky",
    "precision": '"auto", "fp32", "bf16" or "fp16"',
    "tile": "tile size (pixels, >= 64) for huge images; unset: automatic",
    "seed": "random seed, >= 0",
}


@dataclass(frozen=True)
class Preset:
    """A named set of dream settings.

    `config`: the resolved DreamConfig; `start`: the source to dream on when no image is given
    (``noise:WIDTHxHEIGHT`` or a file path), or None when a photo must be given; `path`: the
    file it was read from (None if parsed from text).
    """

    name: str
    description: str
    config: DreamConfig
    start: str | None = None
    path: Path | None = None
    bundled: bool = False


def _bundled_files() -> dict[str, Any]:
    """name -> Traversable of every bundled ``*.toml``."""
    from importlib.resources import files

    try:
        root = files(_BUNDLED_PACKAGE)
    except ModuleNotFoundError:
        # running from a source checkout that is not installed (e.g. `python -m pytest` puts the
        # checkout first on sys.path): the package is the repository's presets/ folder
        root = Path(__file__).resolve().parent.parent / "presets"
    return {
        entry.name[: -len(".toml")]: entry
        for entry in root.iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    }


def preset_names() -> list[str]:
    """Names of the bundled presets, sorted."""
    return sorted(_bundled_files())


def list_presets() -> list[Preset]:
    """Every bundled preset, sorted by name."""
    files = _bundled_files()
    return [_load_bundled(name, files[name]) for name in sorted(files)]


def _load_bundled(name: str, entry: Any) -> Preset:
    text = entry.read_bytes()
    preset = parse_preset(text, name=name, source=f"bundled preset {name!r} ({entry.name})")
    return dataclasses.replace(preset, path=Path(str(entry)), bundled=True)


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".toml") or "/" in text or "\\" in text or text.startswith(("~", "."))


def _normalise_name(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def load_preset(name_or_path: str | Path, *, check: bool = True) -> Preset:
    """A bundled preset by name (``high-level``; case, ``_`` and spaces do not matter) or a
    preset file by path (anything ending in ``.toml`` or containing a ``/``).

    Unknown names raise UnknownNameError (exit 2, with the closest names); a missing file is
    a UsageError (exit 2); a file that cannot be used is a PresetError (exit 1). With `check`,
    the model, layer names, channel numbers and classes are also checked against the model's
    spec (`check_preset`; this imports torchvision).
    """
    if isinstance(name_or_path, Path) or _looks_like_path(str(name_or_path)):
        preset = _load_file(Path(name_or_path).expanduser())
    else:
        files = _bundled_files()
        key = _normalise_name(str(name_or_path))
        if key not in files:
            raise UnknownNameError("preset", str(name_or_path), sorted(files), listing="dreamer presets")
        preset = _load_bundled(key, files[key])
    if check:
        check_preset(preset)
    return preset


def check_preset(preset: Preset) -> None:
    """PresetError (naming the file and key) unless the preset's model exists and its layers,
    channels and classes are the model's."""
    from .classes import resolve_class
    from .models import get_spec
    from .targets import check_channels

    source = f"preset file {preset.path}" if preset.path is not None else f"preset {preset.name!r}"
    config = preset.config
    try:
        spec = get_spec(config.model)
    except UsageError as exc:
        raise PresetError(f"{source}: key 'model': {exc.message}", hint=exc.hint) from None
    for target in config.layers:
        try:
            info = spec.resolve(target.layer)
        except UsageError as exc:
            raise PresetError(f"{source}: key 'layers': {exc.message}", hint=f"see `dreamer layers --model {spec.name}`") from None
        if target.channels is not None:
            try:
                check_channels(info, target.channels)
            except ConfigError as exc:
                raise _bad(source, "layers", str(target), exc.allowed) from None
    for target in config.classes:
        try:
            resolve_class(target.name, spec.categories)
        except UsageError as exc:
            raise PresetError(f"{source}: key 'classes': {exc.message}", hint=spec.categories_note or exc.hint) from None


def _load_file(path: Path) -> Preset:
    if not path.exists():
        raise UsageError(f"no such preset file: {path}", hint="give a bundled name (see `dreamer presets`) or a .toml file")
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a preset file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PresetError(f"preset file {path}: cannot be read ({exc.strerror or exc})") from None
    stem = path.name[: -len(".toml")] if path.name.lower().endswith(".toml") else path.name
    preset = parse_preset(data, name=stem, source=f"preset file {path}", base=path.parent)
    return dataclasses.replace(preset, path=path)


def _bad(source: str, key: str, value: Any, allowed: str, hint: str | None = None) -> PresetError:
    shown = _toml_value(value) if _toml_ok(value) else repr(value)
    return PresetError(f"{source}: key {key!r}: invalid value {shown} ({allowed})", hint=hint)


def _text_list(source: str, key: str, value: Any, parse, allowed: str) -> tuple:
    """A TOML string (one item) or array of strings (numbers allowed for classes) -> parsed targets."""
    items = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(items, list):
        raise _bad(source, key, value, allowed)
    out = []
    for item in items:
        if key == "classes" and isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            raise _bad(source, key, item, allowed)
        try:
            out.append(parse(item))
        except ConfigError as exc:
            raise _bad(source, key, item, exc.allowed, exc.hint) from None
    return tuple(out)


def _check_start(source: str, value: Any, base: Path | None) -> str:
    allowed = "noise:WIDTHxHEIGHT (e.g. noise:512x512) or the path of a photo"
    if not isinstance(value, str) or not value.strip():
        raise _bad(source, "start", value, allowed)
    value = value.strip()
    if value.startswith("noise:"):
        m = _NOISE_RE.fullmatch(value)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise _bad(source, "start", value, allowed)
        return value
    path = Path(value).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return str(path)


def parse_preset(
    data: str | bytes, *, name: str, source: str | None = None, base: Path | None = None
) -> Preset:
    """Parse preset TOML. `source` names it in error messages; `base` is the folder that a
    relative ``start`` path is relative to (the file's folder)."""
    source = source or f"preset {name!r}"
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        raw = tomllib.loads(text)
    except UnicodeDecodeError:
        raise PresetError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{source}: not valid TOML: {exc}") from None

    unknown = [k for k in raw if k not in PRESET_KEYS]
    if unknown:
        key = unknown[0]
        near = closest(key, PRESET_KEYS)
        message = f"{source}: unknown key {key!r}"
        if near:
            message += f"; did you mean {near[0]!r}?"
        raise PresetError(message, hint="allowed keys: " + ", ".join(PRESET_KEYS))

    description = raw.pop("description", "")
    if not isinstance(description, str) or "\n" in description:
        raise _bad(source, "description", description, "a one-line string")
    start = _check_start(source, raw.pop("start"), base) if "start" in raw else None

    fields: dict[str, Any] = dict(raw)
    if "layers" in fields:
        fields["layers"] = _text_list(
            source, "layers", fields["layers"], parse_layer_target,
            'a list of layer specs such as ["mixed4c", "mixed4a:97", "mixed5a=0.5"]',
        )
    if "classes" in fields:
        fields["classes"] = _text_list(
            source, "classes", fields["classes"], parse_class_target,
            'a list of ImageNet classes such as ["banana", "954", "anemone fish=0.5"]',
        )
    try:
        # a class preset means the classes only, unless it names layers too (DreamConfig.override)
        config = DreamConfig().override(**fields)
    except ConfigError as exc:
        key = exc.field if exc.field in PRESET_KEYS else "layers"
        raise _bad(source, key, exc.value, exc.allowed, exc.hint) from None
    except TypeError as exc:  # a value of a type the validation did not expect
        raise PresetError(f"{source}: {exc}") from None
    return Preset(name=name, description=description, config=config, start=start)


# --- writing TOML ---------------------------------------------------------------------------


def _toml_ok(value: Any) -> bool:
    if isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, (list, tuple)):
        return all(_toml_ok(v) for v in value)
    return False


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        # TOML floats need a '.' or an exponent ('1e-05' is fine, '3' would read back as an int)
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(value, str):
        # JSON's string escapes are a subset of TOML basic strings' escapes
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def for_model(preset: Preset, model: str) -> Preset:
    """The preset on another model (its roles then name that model's layers), checked.

    An unknown model, or a layer or class the model lacks, is a UsageError (exit 2) naming
    the model."""
    from .models import get_spec

    spec = get_spec(model)  # UnknownNameError with the closest names
    moved = dataclasses.replace(preset, config=preset.config.replace(model=spec.name))
    try:
        check_preset(moved)
    except PresetError as exc:
        raise UsageError(f"--model {spec.name}: {exc.message}", hint=exc.hint) from None
    return moved


def resolved_roles(config: DreamConfig) -> list[tuple[str, str]]:
    """(role spec, the layer it names on the config's model) for each layer term given by role,
    e.g. ``("@deep=0.5", "mixed5a=0.5")``; empty when the model is unknown."""
    from .config import LayerTarget
    from .models import get_spec

    roles = [t for t in config.layers if t.layer.startswith("@")]
    if not roles:
        return []
    try:
        spec = get_spec(config.model)
        return [(str(t), str(LayerTarget(spec.resolve(t.layer).name, t.channels, t.weight))) for t in roles]
    except UsageError:
        return []


def preset_to_toml(preset: Preset) -> str:
    """The preset as TOML, every setting written out (defaults included) with a comment;
    layers named by role get a comment saying which layer each is on the preset's model.

    `parse_preset` (and so ``--preset FILE``) reads it back to the same settings.
    """
    lines = [f"# dreamer preset: {preset.name}", "# Save as NAME.toml, edit, and use with: dreamer run --preset NAME.toml", ""]
    values: dict[str, Any] = {"description": preset.description, "start": preset.start, **preset.config.to_dict()}
    for key in PRESET_KEYS:
        value = values[key]
        lines.append(f"# {_COMMENTS[key]}")
        if key == "layers" and (roles := resolved_roles(preset.config)):
            lines.append(f"# on {preset.config.model}: " + ", ".join(f"{r} is {layer}" for r, layer in roles))
        if value is None:
            example = '"noise:512x512"' if key == "start" else "512"
            lines.append(f"# {key} = {example}")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
