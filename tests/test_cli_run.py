"""`dreamer run`, `dreamer layers` and `dreamer --version` through click's CliRunner.

Every bad input gets its exit code (2 usage, 1 runtime), one clear error line, no traceback,
and leaves nothing behind. Dreams are tiny: 64x80 px, one octave, one step.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, features

import dreamer
from dreamer.cli import main
from dreamer.config import DreamConfig
from dreamer.loops.deepdream import dream
from dreamer.io.images import load_image, read_metadata
from dreamer.io.metadata import parse_metadata
from dreamer.models import get_spec

FAST = ["--weights", "random", "--layer", "mixed3a", "--octaves", "1", "--steps", "1", "--jitter", "2"]


@pytest.fixture
def loads(monkeypatch, network):
    """`load_model` answered by the shared random network (fast); the calls are recorded."""
    calls: list[tuple[str, str]] = []

    def fake_load_model(name="googlenet", *, weights="pretrained", device="cpu", progress=False):
        calls.append((name, str(weights)))
        assert str(weights) in ("random", "random:0"), "these tests use --weights random"
        return network

    monkeypatch.setattr("dreamer.models.load_model", fake_load_model)
    return calls


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    return d


def _photo(path: Path, size=(80, 64), seed: int = 0) -> Path:
    """A smooth random RGB picture of `size` (width, height)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    small.resize(size, Image.BILINEAR).save(path)
    return path


def _run(*args: str):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _assert_clean_failure(result, code: int, *words: str) -> str:
    """Exit `code`, no traceback, exactly one 'Error:' line containing `words`; returns it.

    Besides the error: its 'Hint:' line, warnings, and for click's own checks its usage lines."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    others = [
        line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("Error:", "Hint:", "Warning:", "Usage:", "Try "))
    ]
    assert others == [], result.stderr  # the error and its hint are one line each
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


# --- bad inputs ---------------------------------------------------------------------------


def test_missing_file(loads, folder):
    result = _run(folder / "nope.png", *FAST)
    _assert_clean_failure(result, 2, "no such file", "nope.png")
    assert _listing(folder) == [] and loads == []


def test_directory_given_as_image(loads, folder):
    result = _run(folder, *FAST)
    _assert_clean_failure(result, 2, "directory")
    assert _listing(folder) == [] and loads == []


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("notes.png", b"this is a text file, not a picture", ("not an image",)),
        ("empty.png", b"", ("empty", "0 bytes")),
    ],
)
def test_unreadable_files(loads, folder, name, content, words):
    (folder / name).write_bytes(content)
    result = _run(folder / name, *FAST)
    _assert_clean_failure(result, 1, name, *words)
    assert _listing(folder) == [name]
    assert loads == []  # found from the header, before the model was loaded


def test_truncated_image(loads, folder):
    src = _photo(folder / "whole.png")
    data = src.read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    src.unlink()
    result = _run(folder / "cut.png", *FAST)
    _assert_clean_failure(result, 1, "cut.png", "truncated")
    assert _listing(folder) == ["cut.png"]


def test_decompression_bomb(loads, folder):
    src = _photo(folder / "big.png")
    result = _run(src, "--max-pixels", "1000", *FAST)
    _assert_clean_failure(result, 1, "big.png", "80x64", "--max-pixels")
    assert _listing(folder) == ["big.png"]
    assert loads == []  # refused from the header, before the model was loaded
    # the documented way out works
    assert _run(src, "--max-pixels", "6000", *FAST).exit_code == 0


def test_absurd_size_is_refused_before_it_is_made(loads, folder):
    src = _photo(folder / "a.png")  # 80x64 = 5120 pixels: within the limit
    result = _run(src, "--size", "200", "--max-pixels", "6000", *FAST)  # 200x160 is not
    _assert_clean_failure(result, 2, "--size 200", "200x160", "--max-pixels")  # the value typed: usage
    assert _listing(folder) == ["a.png"]
    result = _run("noise:80x64", "--size", "100000", *FAST, "-o", folder / "n.png")
    _assert_clean_failure(result, 2, "--size 100000", "--max-pixels")
    assert _listing(folder) == ["a.png"]


def test_load_source_size_matches_load_image(folder):
    from dreamer.cli.common import Source, load_source

    src = _photo(folder / "a.png", size=(200, 100))
    got = load_source(Source(str(src), path=src), size=90, seed=0)
    assert torch.equal(got, load_image(src, size=90))
    assert got.shape == (1, 3, 45, 90)


def test_unknown_layer_suggests_close_names(loads, folder):
    src = _photo(folder / "a.png")
    result = _run(src, *FAST, "--layer", "mixed4x")
    line = _assert_clean_failure(result, 2, "unknown layer 'mixed4x'", "mixed4c")
    assert "did you mean" in line
    assert "dreamer layers" in result.stderr
    assert loads == []  # checked before the model is loaded
    assert _listing(folder) == ["a.png"]


@pytest.mark.parametrize("spec", ["mixed4c:512", "mixed3a:0-300", "mixed4c:abc"])
def test_bad_channels(loads, folder, spec):
    src = _photo(folder / "a.png")
    result = _run(src, *FAST, "--layer", spec)
    _assert_clean_failure(result, 2, "channel")
    assert loads == [] and _listing(folder) == ["a.png"]


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--octaves", "0", "--octaves"),
        ("--octaves", "-2", "--octaves"),
        ("--steps", "0", "--steps"),
        ("--octave-scale", "1", "--octave-scale"),
        ("--octave-scale", "0.5", "--octave-scale"),
        ("--jitter", "-1", "--jitter"),
        ("--step-size", "0", "--step-size"),
        ("--size", "0", "--size"),
        ("--seed", "-1", "--seed"),
        ("--seed", str(2**64), "--seed"),
    ],
)
def test_bad_numbers(loads, folder, flag, value, field):
    src = _photo(folder / "a.png")
    result = _run(src, *FAST, flag, value)
    line = _assert_clean_failure(result, 2, field)  # the flag typed, not the config field
    assert "_" not in line.split(":")[1], line
    assert loads == [] and _listing(folder) == ["a.png"]


def test_image_too_small_for_the_octaves_uses_fewer(loads, folder):
    src = _photo(folder / "a.png")  # 80x64: room for 3 octaves of 1.4 above 32 px
    result = _run(src, *FAST, "--octaves", "5")
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.stderr and "too small for 5 octaves" in result.stderr and "using 3" in result.stderr
    assert (folder / "a.dream.png").exists()


@pytest.mark.parametrize("size", [(40, 20), (300, 20)])
def test_image_too_small_at_all(loads, folder, size):
    src = _photo(folder / "tiny.png", size=size)
    result = _run(src, *FAST)
    _assert_clean_failure(result, 1, f"{size[0]}x{size[1]}", "32")
    assert _listing(folder) == ["tiny.png"]
    # it says what would work, and that works
    found = re.search(r"--size (\d+)", result.stderr)
    assert found, result.stderr
    assert _run(src, *FAST, "--size", found.group(1)).exit_code == 0


def test_output_under_a_regular_file(loads, folder):
    src = _photo(folder / "a.png")
    (folder / "file").write_text("not a directory")
    result = _run(src, *FAST, "-o", folder / "file" / "out.png")
    _assert_clean_failure(result, 1, "not a directory")
    assert _listing(folder) == ["a.png", "file"] and loads == []


def test_output_directory_missing(loads, folder):
    src = _photo(folder / "a.png")
    result = _run(src, *FAST, "-o", folder / "no" / "such" / "out.png")
    _assert_clean_failure(result, 1, "does not exist")
    assert _listing(folder) == ["a.png"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_directory_read_only(loads, folder):
    src = _photo(folder / "a.png")
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _assert_clean_failure(_run(src, *FAST, "-o", locked / "out.png"), 1, "not writable")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("force", [False, True])
def test_output_equal_to_input(loads, folder, force):
    src = _photo(folder / "a.png")
    before = src.read_bytes()
    args = [src, *FAST, "-o", folder / "." / "a.png"] + (["--force"] if force else [])
    _assert_clean_failure(_run(*args), 2, "overwrite the input")
    assert src.read_bytes() == before
    assert _listing(folder) == ["a.png"]


def test_output_exists_without_force(loads, folder):
    src = _photo(folder / "a.png")
    out = folder / "out.png"
    out.write_bytes(b"precious")
    _assert_clean_failure(_run(src, *FAST, "-o", out), 2, "already exists")
    assert "--force" in _run(src, *FAST, "-o", out).stderr
    assert out.read_bytes() == b"precious"
    assert _listing(folder) == ["a.png", "out.png"]


def test_output_exists_with_force(loads, folder):
    src = _photo(folder / "a.png")
    out = folder / "out.png"
    out.write_bytes(b"precious")
    result = _run(src, *FAST, "-o", out, "--force")
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (80, 64)
    assert _listing(folder) == ["a.png", "out.png"]


def test_unknown_output_extension(loads, folder):
    src = _photo(folder / "a.png")
    _assert_clean_failure(_run(src, *FAST, "-o", folder / "out.xyz"), 2, ".xyz")
    assert _listing(folder) == ["a.png"]


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0"])
def test_unknown_device(loads, folder, device):
    src = _photo(folder / "a.png")
    _assert_clean_failure(_run(src, *FAST, "--device", device), 2, "unknown device", device)
    assert loads == [] and _listing(folder) == ["a.png"]


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_asked_for_where_there_is_none(loads, folder, monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    src = _photo(folder / "a.png")
    _assert_clean_failure(_run(src, *FAST, "--device", device), 1, "CUDA is not available")
    assert loads == [] and _listing(folder) == ["a.png"]


def test_cuda_index_that_does_not_exist(loads, folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    src = _photo(folder / "a.png")
    _assert_clean_failure(_run(src, *FAST, "--device", "cuda:3"), 1, "cuda:3", "1 CUDA device")


def test_mps_asked_for_where_there_is_none(loads, folder, monkeypatch):
    monkeypatch.setattr("dreamer.devices._mps_available", lambda: False)
    src = _photo(folder / "a.png")
    _assert_clean_failure(_run(src, *FAST, "--device", "mps"), 1, "MPS is not available")


def test_unknown_model(loads, folder):
    src = _photo(folder / "a.png")
    _assert_clean_failure(_run(src, *FAST, "--model", "googlenett"), 2, "unknown model", "googlenet")
    assert loads == []


def test_no_image_given(loads):
    _assert_clean_failure(_run(*FAST), 2, "no image")


def test_failed_write_leaves_no_partial_file(loads, folder, monkeypatch):
    src = _photo(folder / "a.png")

    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    _assert_clean_failure(_run(src, *FAST), 1, "No space left on device")
    assert _listing(folder) == ["a.png"]


def test_interrupt_leaves_no_partial_file(loads, folder, monkeypatch):
    src = _photo(folder / "a.png")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dreamer.loops.deepdream.dream", interrupted)
    monkeypatch.setattr("dreamer.loops.run_config", interrupted, raising=False)
    result = _run(src, *FAST)
    assert result.exit_code == 130
    assert "Traceback" not in result.output and "Interrupted" in result.stderr
    assert _listing(folder) == ["a.png"]


# --- what a run writes --------------------------------------------------------------------


def test_default_output_beside_the_input(loads, folder, tmp_path, monkeypatch):
    src = _photo(folder / "photo.jpg")
    monkeypatch.chdir(tmp_path)  # not the image's folder
    result = _run("photos/photo.jpg", *FAST)
    assert result.exit_code == 0, result.output
    out = folder / "photo.dream.png"
    assert result.stdout.strip() == os.path.join("photos", "photo.dream.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (80, 64) and img.mode == "RGB"
    assert _listing(folder) == ["photo.dream.png", "photo.jpg"]
    assert src.exists()


def test_png_metadata_records_everything(loads, folder):
    src = _photo(folder / "a.png")
    args = [
        "--weights", "random", "--layer", "mixed3a:0-7", "--layer", "mixed3b=0.5", "--octaves", "2",
        "--octave-scale", "1.5", "--steps", "1", "--step-size", "2.5", "--jitter", "3", "--seed", "7",
        "--blur", "0.5", "--size", "72",
    ]
    result = _run(src, *args, "-o", folder / "out.png")
    assert result.exit_code == 0, result.output
    chunks = read_metadata(folder / "out.png")
    assert chunks["Software"] == f"dreamer {dreamer.__version__}"
    record = parse_metadata(chunks)
    assert record["dreamer_version"] == dreamer.__version__
    assert record["model"] == "googlenet"
    assert record["weights"] == "random:0"
    assert record["seed"] == 7
    assert record["device"] == "cpu"
    assert record["source"] == str(src)
    assert record["size"] == 72
    assert record["precision_used"] == "fp32"  # what "auto" became on the CPU
    # every field of the config, resolved (defaults included)
    assert set(record["config"]) == {f.name for f in dataclasses.fields(DreamConfig)}
    expected = DreamConfig(
        layers=("mixed3a:0-7", "mixed3b=0.5"), octaves=2, octave_scale=1.5, steps=1, step_size=2.5,
        jitter=3, seed=7, blur=0.5,
    )
    assert DreamConfig.from_dict(record["config"]) == expected
    json.dumps(record)  # plain data


def test_metadata_is_enough_to_reproduce_the_output(loads, folder, network):
    src = _photo(folder / "a.png")
    result = _run(src, *FAST, "--seed", "4", "--jitter", "6", "-o", folder / "out.png")
    assert result.exit_code == 0, result.output
    record = parse_metadata(read_metadata(folder / "out.png"))
    config = DreamConfig.from_dict(record["config"])
    again = dream(load_image(record["source"]), network, config)
    expected = (again[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(folder / "out.png")), expected)


def test_several_images_load_the_model_once(loads, folder):
    a = _photo(folder / "a.png", seed=1)
    b = _photo(folder / "b.jpg", size=(64, 48), seed=2)
    result = _run(a, b, *FAST)
    assert result.exit_code == 0, result.output
    assert loads == [("googlenet", "random")]
    assert _listing(folder) == ["a.dream.png", "a.png", "b.dream.png", "b.jpg"]
    assert Image.open(folder / "b.dream.png").size == (64, 48)
    assert result.stdout.splitlines() == [str(folder / "a.dream.png"), str(folder / "b.dream.png")]


def test_several_images_into_a_directory(loads, folder, tmp_path):
    a = _photo(folder / "a.png", seed=1)
    b = _photo(folder / "b.png", seed=2)
    out = tmp_path / "out"
    result = _run(a, b, *FAST, "-o", out)
    assert result.exit_code == 0, result.output
    assert _listing(out) == ["a.dream.png", "b.dream.png"]
    assert len(loads) == 1


def test_several_images_with_one_output_file_is_refused(loads, folder):
    a = _photo(folder / "a.png", seed=1)
    b = _photo(folder / "b.png", seed=2)
    result = _run(a, b, *FAST, "-o", folder / "out.png")
    _assert_clean_failure(result, 2, "names one file")
    assert "folder" in result.stderr
    assert loads == [] and _listing(folder) == ["a.png", "b.png"]


def test_one_bad_image_among_several(loads, folder):
    a = _photo(folder / "a.png")
    (folder / "bad.png").write_bytes(b"junk")
    result = _run(folder / "bad.png", a, *FAST)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "bad.png" in result.stderr and "not an image" in result.stderr
    assert _listing(folder) == ["a.dream.png", "a.png", "bad.png"]


def test_size_scales_the_longest_side(loads, folder):
    src = _photo(folder / "a.png", size=(200, 100))
    result = _run(src, *FAST, "--size", "90")
    assert result.exit_code == 0, result.output
    assert Image.open(folder / "a.dream.png").size == (90, 45)
    up = _run(src, *FAST, "--size", "240", "-o", folder / "up.png")
    assert up.exit_code == 0
    assert Image.open(folder / "up.png").size == (240, 120)


@pytest.mark.parametrize(
    ("ext", "fmt", "feature"),
    [(".jpg", "JPEG", "jpg"), (".jpeg", "JPEG", "jpg"), (".webp", "WEBP", "webp"), (".tif", "TIFF", "libtiff"), (".PNG", "PNG", None)],
)
def test_output_format_follows_the_extension(loads, folder, ext, fmt, feature):
    if feature and feature != "libtiff" and not features.check(feature):
        pytest.skip(f"Pillow lacks {feature}")
    src = _photo(folder / "a.png")
    out = folder / f"out{ext}"
    result = _run(src, *FAST, "-o", out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.format == fmt and img.size == (80, 64)
    assert parse_metadata(read_metadata(out))["weights"] == "random:0"
    assert _listing(folder) == ["a.png", out.name]


def test_quiet_prints_nothing(loads, folder):
    src = _photo(folder / "a.png")
    result = _run(src, *FAST, "--quiet")
    assert result.exit_code == 0
    assert result.output == ""
    assert (folder / "a.dream.png").exists()


def test_noise_source(loads, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run("noise:72x48", *FAST, "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "noise_72x48.dream.png").size == (72, 48)


# --- other commands -----------------------------------------------------------------------


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"dreamer, version {dreamer.__version__}"


def test_help_lists_the_options():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--layer", "--octaves", "--octave-scale", "--steps", "--step-size", "--jitter", "--size",
                   "--seed", "--device", "--weights", "--output", "--force", "--quiet", "--max-pixels"):
        assert option in result.output


def test_layers_lists_every_layer_with_its_channels():
    result = CliRunner().invoke(main, ["layers"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[2:] if line.strip()}
    spec = get_spec("googlenet")
    for info in spec.layers:
        assert info.name in rows, info.name
        columns = rows[info.name].split()
        assert columns[1] == str(info.channels)
        assert columns[2] == (str(info.stride) if info.stride else "-")
        for alias in info.aliases:
            assert alias in rows[info.name]
    assert "(default)" in rows["mixed4c"]


def test_layers_unknown_model():
    result = CliRunner().invoke(main, ["layers", "--model", "resnet"])
    _assert_clean_failure(result, 2, "unknown model")


def test_progress_line_shows_octave_step_and_eta(capsys):
    from dreamer.cli.progress import ProgressLine

    bar = ProgressLine("photo", delay=0.0)
    bar.update(1, 4, "octave 1/2 step 1/2")
    bar.update(4, 4, "octave 2/2 step 2/2")
    bar.close()
    err = capsys.readouterr().err
    assert "photo" in err and "25%" in err and "octave 1/2 step 1/2" in err and "ETA" in err
    assert "100%" in err and "took" in err
    quiet = ProgressLine("photo", delay=0.0, quiet=True)
    quiet.update(1, 4)
    assert capsys.readouterr().err == ""
