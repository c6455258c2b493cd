"""The dream controls on the command line: `run --guide/--mask/--keep-colors/--batch/--diversity/
--sheet`, neurons in `--layer`, and every bad input with its exit code (2 usage, 1 runtime).

The shared random GoogLeNet answers `load_model` (mechanics only; what the controls do to a
picture is measured on the real network in test_controls.py). 80x60 photos, one step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dreamer.cli import main
from dreamer.io.images import read_metadata

FAST = ["-w", "random", "-l", "mixed3a", "--octaves", "1", "--steps", "1", "--jitter", "2", "-q"]


@pytest.fixture
def loads(monkeypatch, network):
    calls: list[str] = []

    def fake_load_model(name="googlenet", *, weights="pretrained", device="cpu", progress=False):
        calls.append(name)
        return network

    monkeypatch.setattr("dreamer.models.load_model", fake_load_model)
    return calls


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "cat.png"
    Image.open("samples/chelsea.png").convert("RGB").resize((80, 60)).save(path)
    return path


def _mask(path: Path, size=(40, 30), white_from: int = 20) -> Path:
    m = np.zeros((size[1], size[0]), dtype=np.uint8)
    m[:, white_from:] = 255
    Image.fromarray(m).save(path)
    return path


def _run(*args: str):
    return CliRunner().invoke(main, ["run", *args])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(int)


def test_mask_keeps_black_pixels_of_the_saved_file(loads, photo, tmp_path):
    mask = _mask(tmp_path / "half.png")  # half the photo's size: scaled up
    out = tmp_path / "out.png"
    r = _run(str(photo), *FAST, "--mask", str(mask), "--keep-colors", "-o", str(out))
    assert r.exit_code == 0, r.output
    before, after = _pixels(photo), _pixels(out)
    assert np.array_equal(after[:, :38], before[:, :38])  # black (and its scaled edge) is exact
    assert np.abs(after[:, 44:] - before[:, 44:]).mean() > 0.5
    record = read_metadata(out)
    assert record["controls"] == {"mask": str(mask), "keep_colors": True}


def test_batch_writes_variations_with_their_seeds_or_one_sheet(loads, tmp_path):
    out = tmp_path / "v.png"
    r = _run("noise:64x48", *FAST, "--seed", "7", "--batch", "3", "--diversity", "5", "-o", str(out))
    assert r.exit_code == 0, r.output
    paths = [tmp_path / f"v.{i}.png" for i in (1, 2, 3)]
    assert all(p.exists() for p in paths) and not out.exists()
    seeds = [read_metadata(p)["seed"] for p in paths]
    assert seeds == [7, 8, 9]
    assert read_metadata(paths[0])["controls"] == {"diversity": "5"}
    assert not np.array_equal(_pixels(paths[0]), _pixels(paths[1]))
    r = _run("noise:64x48", *FAST, "--batch", "2", "--sheet", "-o", str(tmp_path / "sheet.png"))
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "sheet.png") as img:
        assert img.size[0] > 2 * 64  # two tiles side by side
    # variations that exist are refused before any work, like any output
    r = _run("noise:64x48", *FAST, "--batch", "3", "-o", str(out))
    assert r.exit_code == 2 and "already exists" in r.output


def test_guide_and_neuron_run(loads, photo, tmp_path):
    r = _run(str(photo), *FAST, "--guide", f"{photo}=0.5", "-o", str(tmp_path / "g.png"))
    assert r.exit_code == 0, r.output
    assert read_metadata(tmp_path / "g.png")["controls"]["guides"][0]["weight"] == 0.5
    fast = [a for a in FAST if a not in ("-l", "mixed3a")]
    r = _run(str(photo), *fast, "-l", "mixed4a:97@center", "-o", str(tmp_path / "n.png"))
    assert r.exit_code == 0, r.output
    assert read_metadata(tmp_path / "n.png")["config"]["layers"] == ["mixed4a:97@center"]


def test_mask_of_another_aspect_is_stretched_with_a_warning(loads, photo, tmp_path):
    mask = _mask(tmp_path / "square.png", size=(40, 40))
    args = [a for a in FAST if a != "-q"]
    r = _run(str(photo), *args, "--mask", str(mask), "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 0, r.output
    assert "stretched" in r.output


@pytest.mark.parametrize(
    "extra, code, words",
    [
        (["--diversity", "5"], 2, "needs --batch 2 or more"),
        (["--batch", "1", "--diversity", "5"], 2, "needs --batch 2 or more"),
        (["--sheet"], 2, "--sheet"),
        (["--batch", "2", "--diversity", "lots"], 2, "--diversity lots"),
        (["--batch", "2", "--diversity", "0"], 2, "weight > 0"),
        (["--batch", "0"], 2, "--batch"),
        (["-l", "mixed4a:97@middle"], 2, "position"),
        (["-l", "mixed4a@center"], 2, "neuron"),
        (["-l", "mixed4a:97@center", "--guide", "GUIDE"], 2, "not on a neuron"),
        (["--guide", "missing.jpg"], 2, "no such file"),
        (["--guide", "NOTES"], 1, "not an image"),
        (["--mask", "NOTES"], 1, "not an image"),
        (["--mask", "BLACK"], 2, "black everywhere"),
        (["--guide", "GUIDE=x"], 2, "guide weight"),
    ],
)
def test_bad_control_input(loads, photo, tmp_path, extra, code, words):
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    black = tmp_path / "black.png"
    Image.new("L", (8, 8), 0).save(black)
    table = {"NOTES": str(notes), "BLACK": str(black), "GUIDE": str(photo), "GUIDE=x": f"{photo}=x",
             "missing.jpg": str(tmp_path / "missing.jpg")}
    extra = [table.get(a, a) for a in extra]
    fast = FAST if not any(a.startswith("mixed4a") for a in extra) else [a for a in FAST if a not in ("-l", "mixed3a")]
    out = tmp_path / "out.png"
    r = _run(str(photo), *fast, *extra, "-o", str(out))
    assert r.exit_code == code, r.output
    assert words in r.output
    assert "Traceback" not in r.output
    assert r.output.count("Error") == 1
    assert not out.exists()
    assert loads == []  # refused before the model loads


def test_zoom_with_a_mask_keeps_the_black_part_of_every_frame(loads, photo, tmp_path):
    mask = _mask(tmp_path / "half.png")
    frames = tmp_path / "frames"
    args = ["zoom", str(photo), "-w", "random", "-l", "mixed3a", "--steps", "2", "--frames", "3", "--zoom", "1",
            "--mask", str(mask), "--keep-colors", "--format", "frames", "-o", f"{frames}/", "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    shots = [_pixels(p) for p in sorted(frames.glob("frame_*.png"))]
    assert len(shots) == 3
    for later in shots[1:]:
        assert np.array_equal(later[:, :38], shots[0][:, :38])
        assert np.abs(later[:, 44:] - shots[0][:, 44:]).mean() > 0.5
    r = CliRunner().invoke(main, ["zoom", str(photo), "-w", "random", "--mask", str(photo.parent / "nope.png")])
    assert r.exit_code == 2 and "no such file" in r.output
    r = CliRunner().invoke(main, ["zoom", str(photo), "-w", "random", "-l", "mixed4a:97@center", "--guide", str(photo)])
    assert r.exit_code == 2 and "not on a neuron" in r.output
