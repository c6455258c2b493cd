"""Tests for presets: bundled files, TOML round trip, validation, and every preset run end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dreamer.cli import main
from dreamer.config import DreamConfig
from dreamer.errors import PresetError, UnknownNameError, UsageError
from dreamer.io.images import read_metadata, save_image
from dreamer.io.metadata import parse_metadata
from dreamer.models import list_models
from dreamer.presets import (
    PRESET_KEYS,
    Preset,
    for_model,
    list_presets,
    load_preset,
    parse_preset,
    preset_names,
    preset_to_toml,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
CLASS_PRESETS = {
    "hartebeest": "hartebeest",
    "measuring-cup": "measuring cup",
    "ant": "ant",
    "starfish": "starfish",
    "anemone-fish": "anemone fish",
    "banana": "banana",
    "parachute": "parachute",
    "screw": "screw",
}
BUNDLED = sorted(["low-level", "high-level", "from-noise", *CLASS_PRESETS])


@pytest.fixture
def photo(tmp_path) -> Path:
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(48, 48), mode="bilinear")
    path = tmp_path / "photo.png"
    save_image(img[0], path)
    return path


@pytest.fixture
def use_test_network(monkeypatch, network):
    """`dreamer run` gets the session's random network instead of loading one per call."""
    monkeypatch.setattr("dreamer.cli.run.open_network", lambda *a, **k: network)


def write(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the bundled presets -------------------------------------------------------------------


def test_bundled_presets_are_all_there():
    assert preset_names() == BUNDLED
    for preset in list_presets():
        assert preset.bundled and preset.path is not None and preset.path.name == f"{preset.name}.toml"
        assert preset.description and "\n" not in preset.description and len(preset.description) < 110


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_files_spell_out_their_settings(name):
    """Each file sets (not inherits) what the issue asks a preset to set."""
    raw = tomllib.loads((REPO / "presets" / f"{name}.toml").read_text(encoding="utf-8"))
    for key in ("description", "model", "octaves", "steps", "jitter", "param", "transforms", "tv_weight", "blur"):
        assert key in raw, key
    assert "layers" in raw and "classes" in raw
    assert ("learning_rate" if raw["param"] == "fft" else "step_size") in raw


@pytest.mark.parametrize("name, cls", sorted(CLASS_PRESETS.items()))
def test_class_presets_grow_their_class_from_noise(name, cls, network):
    preset = load_preset(name)
    assert [c.name for c in preset.config.classes] == [cls]
    assert cls in network.categories  # torchvision's exact spelling
    assert preset.config.layers == ()
    assert preset.config.param == "fft" and preset.config.transforms == "crops" and preset.config.views >= 2
    assert preset.config.decorrelate and preset.config.steps >= 200
    assert preset.start is not None and preset.start.startswith("noise:")


def test_layer_presets():
    low, high, noise = load_preset("low-level"), load_preset("high-level"), load_preset("from-noise")
    for preset in (low, high, noise):
        assert all(t.layer.startswith("@") for t in preset.config.layers), "bundled layer presets name roles"
    assert high.config.octaves > low.config.octaves
    assert low.start is None and high.start is None
    assert noise.start is not None and noise.start.startswith("noise:")


def _resolved(preset) -> list[str]:
    from dreamer.models import get_spec

    spec = get_spec(preset.config.model)
    return [f"{spec.resolve(t.layer).name}{'' if t.weight == 1 else f'={t.weight:g}'}" for t in preset.config.layers]


def test_role_presets_are_the_classic_googlenet_layers():
    assert _resolved(load_preset("low-level")) == ["mixed3a=0.5", "mixed3b"]
    assert _resolved(load_preset("high-level")) == ["mixed4c", "mixed4d", "mixed5a=0.5"]
    assert _resolved(load_preset("from-noise")) == ["mixed4c"]


@pytest.mark.parametrize("model", list_models())
def test_every_preset_works_on_every_model(model):
    """Layer presets resolve their roles on every model; class presets fit every model whose
    classes have ImageNet's names (inceptionv1's are known by index only)."""
    for name in BUNDLED:
        preset = load_preset(name)
        if preset.config.classes and model == "inceptionv1":
            with pytest.raises(UsageError) as info:
                for_model(preset, model)
            assert "by index" in info.value.hint
            continue
        moved = for_model(preset, model)
        assert moved.config.model == model
        assert len(set(_resolved(moved))) >= min(2, len(moved.config.layers))


def test_presets_show_on_another_model():
    result = CliRunner().invoke(main, ["presets", "show", "high-level", "--model", "vgg16"])
    assert result.exit_code == 0, result.output
    assert 'model = "vgg16"' in result.output
    assert "# on vgg16: @middle is relu4_3, @upper is relu5_2, @deep=0.5 is relu5_3=0.5" in result.output
    assert 'layers = ["@middle", "@upper", "@deep=0.5"]' in result.output
    lite = CliRunner().invoke(main, ["presets", "show", "low-level", "-m", "efficientnet-lite0"]).output
    assert "# on efficientnet-lite0: @shallow=0.5 is " in lite


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["high-level", "--model", "vgg61"], ["unknown model 'vgg61'", "'vgg16'", "dreamer models"]),
        (["banana", "--model", "inceptionv1"], ["--model inceptionv1", "unknown class 'banana'", "by index"]),
    ],
)
def test_presets_show_on_a_model_that_does_not_fit(args, fragments):
    result = CliRunner().invoke(main, ["presets", "show", *args])
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.output


def test_run_a_role_preset_on_another_model(tmp_path, photo):
    out = tmp_path / "out.png"
    args = ["run", str(photo), "--preset", "low-level", "--model", "resnet50", "--weights", "random:0",
            "--size", "64", "--steps", "1", "--octaves", "1", "-q", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    record = parse_metadata(read_metadata(out))
    assert record["model"] == "resnet50" and record["config"]["layers"] == ["@shallow=0.5", "@lower"]


def test_user_preset_with_an_unknown_role(tmp_path):
    path = write(tmp_path, 'layers = ["@deeep"]\n')
    with pytest.raises(PresetError) as info:
        load_preset(str(path))
    assert "unknown role '@deeep'" in info.value.message and "'@deep'" in info.value.message


@pytest.mark.parametrize("name", BUNDLED)
def test_presets_show_round_trips(name, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["presets", "show", name])
    assert result.exit_code == 0, result.output
    saved = write(tmp_path, result.output)
    original, again = load_preset(name), load_preset(str(saved))
    assert again.config == original.config
    assert (again.start, again.description) == (original.start, original.description)
    # every key is written out (unset ones as comments), and showing the saved file gives the same text
    for key in PRESET_KEYS:
        assert f"{key} = " in result.output
    shown_again = runner.invoke(main, ["presets", "show", str(saved)]).output
    assert shown_again.splitlines()[1:] == result.output.splitlines()[1:]


def test_round_trip_of_unusual_values(tmp_path):
    config = DreamConfig(
        layers=("mixed4a:1-3,7=0.25", "conv2"), classes=("anemone fish=2", "954"),
        octave_scale=1.25, step_size=3.0, learning_rate=1e-05, tv_weight=0.5, tile=256, seed=9,
    )
    preset = Preset("odd", 'quote " and \\ backslash, ünïcode', config, start="noise:64x32")
    text = preset_to_toml(preset)
    again = parse_preset(text, name="odd")
    assert again.config == config and again.start == "noise:64x32" and again.description == preset.description
    assert isinstance(again.config.step_size, float)


def test_presets_list_cli():
    result = CliRunner().invoke(main, ["presets"])
    assert result.exit_code == 0, result.output
    for preset in list_presets():
        line = next(line for line in result.output.splitlines() if line.startswith(preset.name + " "))
        assert preset.description in line
        assert (preset.start or "(your photo)") in line


# --- every preset end to end -----------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_preset_runs(name, tmp_path, photo, use_test_network):
    preset = load_preset(name)
    out = tmp_path / "out.png"
    args = ["run", "--preset", name, "--size", "48", "--steps", "2", "-q", "-o", str(out)]
    if preset.start is None:
        args.insert(1, str(photo))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    record = parse_metadata(read_metadata(out))
    # the preset's settings were used, with the explicit flag on top
    assert record["config"] == {**preset.config.to_dict(), "steps": 2}
    from PIL import Image

    with Image.open(out) as img:
        assert img.size == (48, 48)


def test_photo_given_overrides_preset_start(tmp_path, photo, use_test_network):
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        main, ["run", str(photo), "--preset", "banana", "--steps", "1", "--class", "ant", "-q", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    record = parse_metadata(read_metadata(out))
    assert record["source"] == str(photo)
    assert record["config"]["classes"] == ["ant"] and record["config"]["layers"] == []
    assert record["config"]["param"] == "fft"


def test_fft_from_noise_starts_nearly_grey(tmp_path, use_test_network):
    """A render keeps its start's grain, so `run noise:... --param fft` starts from faint noise
    (the classic engine keeps its ±0.1). With a negligible learning rate the start comes back."""
    from dreamer.io.images import load_image

    stds = {}
    for param in ("fft", "pixel"):
        out = tmp_path / f"{param}.png"
        args = ["run", "noise:48x48", "--param", param, "--layer", "mixed3a", "--steps", "1", "--octaves", "1",
                "--lr", "1e-9", "--step-size", "1e-9", "--jitter", "0", "-q", "-o", str(out)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        stds[param] = float(load_image(out).std())
    assert stds["fft"] < 0.012 and stds["pixel"] > 0.04


def test_photo_preset_without_photo_is_a_usage_error():
    result = CliRunner().invoke(main, ["run", "--preset", "high-level"])
    assert result.exit_code == 2 and "preset 'high-level' dreams on a photo" in result.output


# --- user files and validation ------------------------------------------------------------


def test_user_file_defaults_and_relative_start(tmp_path, photo):
    path = write(tmp_path, 'description = "mine"\nstart = "photo.png"\nclasses = ["banana"]\nsteps = 3\n')
    preset = load_preset(str(path))
    assert preset.name == "mine" and not preset.bundled
    assert Path(preset.start) == photo  # relative to the file's folder
    assert preset.config.layers == ()  # classes only, since the file names no layers
    assert preset.config == DreamConfig(layers=(), classes=("banana",), steps=3)
    # a single string is a one-item list
    assert load_preset(str(write(tmp_path, 'layers = "mixed3b"\n'))).config.layers == DreamConfig(layers=("mixed3b",)).layers


def test_preset_names_are_forgiving():
    assert load_preset("Measuring_Cup").name == "measuring-cup"
    assert load_preset("anemone fish").name == "anemone-fish"


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("octave = 4\n", ["unknown key 'octave'", "did you mean 'octaves'?", "allowed keys"]),
        ("[dream]\noctaves = 3\n", ["unknown key 'dream'"]),
        ('octaves = "four"\n', ["key 'octaves'", '"four"', "an integer >= 1"]),
        ("octaves = 2.5\n", ["key 'octaves'", "an integer >= 1"]),
        ("octaves = 0\n", ["key 'octaves'", "an integer >= 1"]),
        ("octave_scale = 0.9\n", ["key 'octave_scale'", "a number > 1"]),
        ("jitter = -3\n", ["key 'jitter'", ">= 0"]),
        ('param = "fourier"\n', ["key 'param'", "one of pixel, fft"]),
        ('decorrelate = "yes"\n', ["key 'decorrelate'", "true or false"]),
        ("tile = 8\n", ["key 'tile'", ">= 64"]),
        ('layers = ["mixed4c:abc"]\n', ["key 'layers'", "channel numbers"]),
        ("layers = [4]\n", ["key 'layers'", "layer specs"]),
        ("layers = []\n", ["key 'layers'", "at least one layer or class"]),
        ("classes = [true]\n", ["key 'classes'", "ImageNet classes"]),
        ('start = "noise:12"\n', ["key 'start'", "noise:WIDTHxHEIGHT"]),
        ("description = 3\n", ["key 'description'", "a one-line string"]),
        ('layers = ["mixed9z"]\n', ["key 'layers'", "unknown layer 'mixed9z'", "did you mean"]),
        ('layers = ["mixed4a:600"]\n', ["key 'layers'", "channels 0-511"]),
        ('classes = ["bananna"]\n', ["key 'classes'", "'banana'"]),
        ('model = "alexnett"\n', ["key 'model'", "unknown model", "'alexnet'"]),
        ("octaves = [\n", ["not valid TOML"]),
    ],
)
def test_bad_preset_file_exit_1_names_file_and_key(tmp_path, text, fragments):
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(PresetError):
        load_preset(str(path))
    result = CliRunner().invoke(main, ["run", "noise:48x48", "--preset", str(path), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1, result.output
    assert str(path) in result.output
    for fragment in fragments:
        assert fragment in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.png").exists()


def test_unknown_preset_name_exit_2():
    with pytest.raises(UnknownNameError) as info:
        load_preset("high-levle")
    assert info.value.suggestions[0] == "high-level"
    runner = CliRunner()
    for args in (["run", "noise:48x48", "--preset", "high-levle"], ["presets", "show", "high-levle"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "unknown preset 'high-levle'" in result.output
        assert "'high-level'" in result.output and "dreamer presets" in result.output


def test_missing_preset_file_exit_2(tmp_path):
    with pytest.raises(UsageError):
        load_preset(str(tmp_path / "none.toml"))
    result = CliRunner().invoke(main, ["presets", "show", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and "no such preset file" in result.output


# --- packaging ----------------------------------------------------------------------------


def test_wheel_contains_the_presets(tmp_path):
    """A non-editable install must find the presets: they are package data of the wheel.

    Built from a copy of the sources, so the repository gets no build/ or egg-info."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("dreamer", "presets"):
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    for file in ("pyproject.toml", "README.md"):
        if (REPO / file).exists():
            shutil.copy(REPO / file, src / file)
    if not (src / "README.md").exists():
        (src / "README.md").write_text("dreamer\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "wheel"), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "wheel").glob("dreamer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in BUNDLED:
        assert f"dreamer/presets_data/{name}.toml" in names
    assert "dreamer/presets_data/__init__.py" in names
