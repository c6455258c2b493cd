"""`dreamer presets preview` and `dreamer.visualize.preview`: every preset on one photo, on one sheet.

Tiny: 48-64 px tiles, one or two steps. The random GoogLeNet for mechanics, EfficientNet-Lite0
for --model (the bundled presets name layer roles, so they run on it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from dreamer.cli import main
from dreamer.io.images import load_image, read_metadata
from dreamer.presets import load_preset
from dreamer.visualize import preview as P


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "cat.png"
    Image.open("samples/chelsea.png").convert("RGB").resize((80, 60)).save(path)
    return path


def test_preview_config_caps_steps_unless_told():
    pixel = load_preset("low-level").config.replace(steps=50)
    fft = load_preset("banana").config
    assert P.preview_config(pixel).steps == P.PREVIEW_PIXEL_STEPS
    assert P.preview_config(fft).steps == P.PREVIEW_FFT_STEPS
    assert P.preview_config(pixel.replace(steps=3)).steps == 3
    assert P.preview_config(fft, steps=7).steps == 7


def test_preview_presets_on_a_photo_and_from_noise(network, photo):
    image = load_image(photo)
    presets = [load_preset("low-level"), load_preset("banana")]
    result = P.preview_presets(presets, lambda name: network, image, size=48, steps=1)
    assert result.labels == ("photo", "low-level", "banana (noise)")
    assert result.tiles.shape == (3, 3, 36, 48)  # the photo's shape, scaled to 48 px
    assert result.notes == ()
    scaled = result.tiles[0]
    assert (result.tiles[1] - scaled).abs().mean() > 1e-3  # the photo preset dreamed on the photo
    assert (result.tiles[1] - scaled).abs().mean() < 0.2
    assert (result.tiles[2] - scaled).abs().mean() > 0.1  # the noise preset did not start from it
    sheet = P.preview_sheet(result, title="t", columns=3)
    assert sheet.shape[0] == 3 and sheet.shape[2] > 3 * 48


def test_preview_on_another_model_and_a_preset_it_cannot_run(lite0, tmp_path):
    odd = tmp_path / "odd.toml"
    odd.write_text('description = "one googlenet channel"\nmodel = "googlenet"\nlayers = ["mixed4c:97"]\n')
    presets = [load_preset("high-level"), load_preset(odd)]
    asked: list[str] = []

    def network_for(name: str):
        asked.append(name)
        return lite0

    result = P.preview_presets(presets, network_for, None, model="efficientnet-lite0", size=48, steps=1)
    assert asked == ["efficientnet-lite0"]
    assert result.labels == ("high-level (noise)", "odd: n/a")
    assert result.notes[0][0] == "odd" and "mixed4c" in result.notes[0][1]
    assert torch.all(result.tiles[1] == result.tiles[1][0, 0, 0])  # a flat grey tile
    assert result.tiles[0].std() > 0.01


@pytest.fixture
def loads(monkeypatch, network):
    """`load_model` answered by the shared random network; the calls are recorded."""
    calls: list[tuple[str, str]] = []

    def fake_load_model(name="googlenet", *, weights="pretrained", device="cpu", progress=False):
        calls.append((name, str(weights)))
        return network

    monkeypatch.setattr("dreamer.models.load_model", fake_load_model)
    return calls


def _run(*args: str):
    return CliRunner().invoke(main, ["presets", "preview", *args])


def test_cli_writes_one_labelled_sheet(loads, photo, tmp_path):
    out = tmp_path / "sheet.png"
    r = _run(str(photo), "-p", "low-level", "-p", "banana", "-w", "random", "-s", "48", "--steps", "1", "-o", str(out), "-q")
    assert r.exit_code == 0, r.output
    assert loads == [("googlenet", "random")]  # one model, loaded once
    with Image.open(out) as img:
        width, height = img.size
        pixels = np.asarray(img.convert("RGB"))
    assert width > 2 * 48 and height > 2 * 36  # three tiles, two per row
    assert pixels.std() > 10
    record = read_metadata(out)
    assert record["presets"] == ["low-level", "banana"] and record["size"] == 48
    # the default name: beside the photo
    r = _run(str(photo), "-p", "low-level", "-w", "random", "-s", "48", "--steps", "1", "-q")
    assert r.exit_code == 0, r.output
    assert (photo.parent / "cat.presets.png").exists()


def test_cli_bad_input(loads, photo, tmp_path):
    r = _run(str(photo), "-p", "hig-level", "-w", "random")
    assert r.exit_code == 2 and "did you mean 'high-level'" in r.output
    r = _run(str(tmp_path / "missing.jpg"), "-w", "random")
    assert r.exit_code == 2 and "no such file" in r.output
    notes = tmp_path / "notes.png"
    notes.write_text("hello")
    r = _run(str(notes), "-p", "low-level", "-w", "random", "-o", str(tmp_path / "s.png"))
    assert r.exit_code == 1 and "not an image" in r.output
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"x")
    r = _run(str(photo), "-p", "low-level", "-w", "random", "-o", str(taken))
    assert r.exit_code == 2 and "already exists" in r.output
    assert taken.read_bytes() == b"x"
    r = _run(str(photo), "-m", "efficientnet-lite", "-w", "random")
    assert r.exit_code == 2 and "did you mean" in r.output and "efficientnet-lite0" in r.output
    r = _run(str(photo), "-s", "8", "-w", "random")
    assert r.exit_code == 2 and "--size" in r.output
    assert "Traceback" not in r.output


def test_cli_defaults_match_the_library():
    from dreamer.cli import preview as cli_preview

    assert (cli_preview.PREVIEW_SIZE, cli_preview.PREVIEW_PIXEL_STEPS, cli_preview.PREVIEW_FFT_STEPS) == (
        P.PREVIEW_SIZE, P.PREVIEW_PIXEL_STEPS, P.PREVIEW_FFT_STEPS
    )
    r = CliRunner().invoke(main, ["presets", "preview", "--help"])
    assert r.exit_code == 0 and "contact sheet" in r.output
