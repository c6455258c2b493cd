"""One CLI: each option name means one thing in every command, help pages show the defaults
the commands really use, exit codes and messages follow one rule, default output names never
collide. In-process (click's CliRunner) with the shared random network."""

from __future__ import annotations

import re
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from dreamer.cli import main
from dreamer.io.images import read_metadata
from dreamer.io.metadata import parse_metadata

TINY = ["--weights", "random", "--quiet"]


@pytest.fixture
def loads(monkeypatch, network):
    """`load_model` answered by the shared random network; the calls are recorded."""
    calls: list[str] = []

    def fake_load_model(name="googlenet", *, weights="pretrained", device="cpu", progress=False):
        calls.append(str(weights))
        assert str(weights).startswith("random"), "these tests use --weights random"
        return network

    monkeypatch.setattr("dreamer.models.load_model", fake_load_model)
    return calls


def _photo(path: Path, size=(80, 64), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BILINEAR).save(path)
    return path


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _record(path: Path) -> dict:
    return parse_metadata(read_metadata(path))


def _commands(group: click.Group = main, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{prefix}{name} "))
        found[f"{prefix}{name}"] = command
    return found


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option)]


def _longs(command: click.Command) -> set[str]:
    return {o for p in _options(command) for o in p.opts + p.secondary_opts if o.startswith("--")}


# --- one name, one meaning --------------------------------------------------------------------

# the short letters and the one long option each stands for (docs: the CLI's naming scheme)
SHORT = {
    "-p": "--preset", "-l": "--layer", "-c": "--class", "-m": "--model", "-w": "--weights", "-d": "--device",
    "-q": "--quiet", "-s": "--size", "-o": "--output", "-f": "--force", "-k": "--top", "-r": "--resume",
    "-n": "--frames", "-h": "--help",
}


def test_each_short_letter_means_one_option_everywhere():
    seen: dict[str, set[tuple[str, str]]] = {}
    for name, command in _commands().items():
        for param in _options(command):
            shorts = [o for o in param.opts if not o.startswith("--")]
            longs = [o for o in param.opts if o.startswith("--")]
            for short in shorts:
                seen.setdefault(short, set()).add((longs[0] if longs else "?", name))
    for short, uses in seen.items():
        assert short in SHORT, f"{short} is not in the naming scheme: {sorted(uses)}"
        wrong = sorted((long, cmd) for long, cmd in uses if long != SHORT[short])
        assert wrong == [], f"{short} means {SHORT[short]}, but: {wrong}"


def test_grids_use_cell_and_columns_not_the_dream_tile():
    commands = _commands()
    for name in ("activations", "filters", "top-images", "channels"):
        longs = _longs(commands[name])
        assert "--tile" not in longs and "--columns" in longs, (name, sorted(longs))
    for name in ("activations", "filters", "top-images"):
        assert "--cell" in _longs(commands[name]), name
    assert "--tile" in _longs(commands["run"]) and "--tile" in _longs(commands["zoom"])


def test_batch_has_one_name_and_max_pixels_is_everywhere_images_are_read():
    commands = _commands()
    for name, command in commands.items():
        assert "--batch-size" not in _longs(command), name
    for name in ("run", "zoom", "activations", "occlusion", "deconv", "top-images"):
        assert "--max-pixels" in _longs(commands[name]), name
        assert "--size" in _longs(commands[name]), name
    recursive = next(p for p in _options(commands["top-images"]) if p.name == "recursive")
    assert recursive.opts == ["--recursive"]


# --- help pages show the defaults the commands use ---------------------------------------------

# help option -> DreamConfig field (as recorded in every output's metadata)
_DREAM_FIELDS = {
    "--octaves": "octaves", "--octave-scale": "octave_scale", "--steps": "steps", "--step-size": "step_size",
    "--jitter": "jitter", "--param": "param", "--transforms": "transforms", "--tv": "tv_weight", "--blur": "blur",
    "--opacity": "opacity_cost",
    "--lr": "learning_rate", "--precision": "precision", "--seed": "seed",
}


def _help_defaults(*command: str) -> dict[str, str]:
    """option -> the text of its `[default: ...]` on the command's help page."""
    result = _invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    cmd = _commands()[" ".join(command)]
    ctx = click.Context(cmd, info_name=command[-1])
    found = {}
    for param in _options(cmd):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        m = re.search(r"\[default: ([^;\]]+)", record[1])
        if m:
            long = next(o for o in param.opts if o.startswith("--"))
            found[long] = m.group(1).strip()
            assert re.sub(r"\s+", " ", m.group(0)) in re.sub(r"\s+", " ", result.output), (long, m.group(0))
    return found


def _same(shown: str, value) -> bool:
    if isinstance(value, bool) or value is None:
        return shown == str(value)
    if isinstance(value, (int, float)):
        return float(shown) == float(value)
    return shown == str(value)


def test_run_help_shows_the_defaults_it_uses(loads, tmp_path):
    shown = _help_defaults("run")
    out = tmp_path / "d.png"
    result = _invoke("run", "noise:48x48", *TINY, "-o", out)
    assert result.exit_code == 0, result.output
    config = _record(out)["config"]
    for flag, field in _DREAM_FIELDS.items():
        assert flag in shown, f"run --help shows no default for {flag}"
        assert _same(shown[flag], config[field]), (flag, shown[flag], config[field])
    assert f"({', '.join(config['layers'])} on googlenet)" in shown["--layer"], shown["--layer"]


def test_zoom_help_shows_the_defaults_it_uses(loads, tmp_path):
    """zoom dreams each frame lightly (1 octave x 5 steps): its help must say so, not run's 4 x 10."""
    shown = _help_defaults("zoom")
    out = tmp_path / "frames"
    result = _invoke("zoom", "noise:48x48", "--frames", "2", "--format", "frames", *TINY, "-o", out)
    assert result.exit_code == 0, result.output
    config = _record(out / "frame_000001.png")["config"]
    for flag, field in _DREAM_FIELDS.items():
        assert flag in shown, f"zoom --help shows no default for {flag}"
        assert _same(shown[flag], config[field]), (flag, shown[flag], config[field])


def test_channels_help_shows_the_defaults_it_uses(loads, tmp_path, monkeypatch):
    used = {}

    def grow(network, layer, chosen, *, size, config, batch_size, progress=None):
        used.update(config=config, chosen=list(chosen), size=size, batch=batch_size)
        return torch.full((len(chosen), 3, *size), 0.5)

    monkeypatch.setattr("dreamer.visualize.channels.grow_channels", grow)
    shown = _help_defaults("channels")
    result = _invoke("channels", "--layer", "mixed3a", *TINY, "-o", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    config = used["config"]
    assert shown["--steps"].startswith(f"{config.steps} for fft") and config.param == shown["--param"] == "fft"
    assert float(shown["--lr"]) == config.learning_rate and int(shown["--seed"]) == config.seed
    assert used["chosen"] == list(range(int(shown["--from"]), int(shown["--from"]) + int(shown["--count"])))
    assert used["size"] == (int(shown["--size"]),) * 2 and used["batch"] == int(shown["--batch"])


# --- errors: the flag typed, one exit-code rule ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--tile", "10"], "--tile"),  # refused by the config, reported by its flag
        (["--octave-scale", "1"], "--octave-scale"),
        (["--lr", "0"], "--lr"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_errors_name_the_flag_typed(loads, tmp_path, args, flag):
    result = _invoke("run", _photo(tmp_path / "a.png"), *TINY, *args)
    assert result.exit_code == 2, result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and flag in error[0] and "_" not in error[0].split(":")[1], result.stderr


def test_zoom_config_errors_name_the_flag(loads, tmp_path):
    result = _invoke("zoom", "noise:48x48", "--frames", "0", *TINY, "-o", tmp_path / "z.gif")
    assert result.exit_code == 2 and "--frames" in result.stderr, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["classes", "1000"],
        ["classes", "no such thing at all"],
        ["run", "noise:48x48", "--class", "1000", *TINY],
        ["occlusion", "IMAGE", "--class", "1000", *TINY],
        ["activations", "IMAGE", "--layer", "mixed9z", *TINY],
        ["deconv", "IMAGE", "--layer", "mixed3a:9999", *TINY],
    ],
)
def test_no_such_name_or_index_is_a_usage_error_everywhere(loads, tmp_path, args):
    args = [str(_photo(tmp_path / "a.png")) if a == "IMAGE" else a for a in args]
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and loads == []


# --- outputs --------------------------------------------------------------------------------------


def test_output_folder_with_a_trailing_slash_for_one_image(loads, tmp_path):
    src = _photo(tmp_path / "a.png")
    result = _invoke("run", src, *TINY, "--octaves", "1", "--steps", "1", "-o", f"{tmp_path / 'new'}/")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["a.dream.png"]
    result = _invoke("filters", *TINY, "-o", f"{tmp_path / 'sheets'}/")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "sheets").iterdir()) == ["filters.conv1.png"]


def test_a_missing_folder_for_several_images_on_a_read_only_file_system(loads, tmp_path, monkeypatch):
    import errno
    import os

    a, b = _photo(tmp_path / "a.png", seed=1), _photo(tmp_path / "b.png", seed=2)
    before = sorted(p.name for p in tmp_path.iterdir())

    with monkeypatch.context() as m:  # checked before any work: the parent cannot be written
        m.setattr(os, "access", lambda *args, **kwargs: False)
        m.setattr("dreamer.cli.common._read_only", lambda path: True)
        result = _invoke("run", a, b, *TINY, "-o", tmp_path / "newdir")
    assert result.exit_code == 1 and "read-only file system" in result.stderr, result.output
    assert "Traceback" not in result.output and loads == []

    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    with monkeypatch.context() as m:  # the file system turns read-only between the check and the write
        m.setattr(Path, "mkdir", refuse)
        result = _invoke("run", a, b, *TINY, "--octaves", "1", "--steps", "1", "-o", tmp_path / "newdir")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Read-only file system" in errors[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_noise_output_is_named_by_the_size_made(loads, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke("run", "noise:384x384", "--size", "48", *TINY, "--octaves", "1", "--steps", "1")
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["noise_48x48.dream.png"]
    with Image.open(tmp_path / "noise_48x48.dream.png") as img:
        assert img.size == (48, 48)


def test_readme_examples_in_order_never_stop_on_existing_outputs(loads, tmp_path, monkeypatch):
    """The README's preset and class examples, one after another in one folder (made quick with
    --size/--steps, which every example accepts): each writes its own picture."""
    monkeypatch.chdir(tmp_path)
    _photo(tmp_path / "photo.jpg")
    quick = ["--size", "48", "--steps", "1", *TINY]
    examples = [
        ["run", "photo.jpg", "--preset", "low-level"],
        ["run", "photo.jpg", "--preset", "high-level", "--octaves", "5"],
        ["run", "--preset", "banana"],
        ["run", "photo.jpg", "--preset", "banana"],
        ["run", "noise:384x384", "--class", "banana", "--param", "fft", "--transforms", "standard"],
        ["run", "noise:384x384", "--class", "banana", "--class", "parachute=0.5", "--param", "fft"],
        ["run", "photo.jpg", "--class", "starfish", "--layer", "mixed4c=0.5"],
        ["run", "noise:256x256", "--layer", "mixed4a:97", "--param", "fft", "--transforms", "standard"],
    ]
    written = []
    for example in examples:
        result = _invoke(*example, *quick)
        assert result.exit_code == 0, (example, result.output)
        written.append(sorted(p.name for p in tmp_path.iterdir()))
    made = set(written[-1]) - {"photo.jpg"}
    assert len(made) == len(examples), written[-1]
    assert {"photo.dream.png", "photo.dream-2.png", "noise_48x48.dream.png"} <= made


def test_force_overwrites_the_default_name_and_explicit_outputs_are_refused(loads, tmp_path):
    src = _photo(tmp_path / "a.png")
    first = _invoke("run", src, *TINY, "--octaves", "1", "--steps", "1")
    assert first.exit_code == 0
    forced = _invoke("run", src, *TINY, "--octaves", "1", "--steps", "1", "--seed", "3", "-f")
    assert forced.exit_code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["a.dream.png", "a.png"]
    assert _record(tmp_path / "a.dream.png")["seed"] == 3
    refused = _invoke("run", src, *TINY, "-o", tmp_path / "a.dream.png")
    assert refused.exit_code == 2 and "already exists" in refused.stderr


# --- top-images and channels ------------------------------------------------------------------------


def test_top_images_leaves_out_dreamer_pictures_and_never_overwrites_a_scanned_image(loads, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        _photo(folder / f"p{i}.png", seed=i)
    # a dream and an activation sheet made here, one renamed so that only its metadata says what it is
    assert _invoke("run", folder / "p0.png", *TINY, "--octaves", "1", "--steps", "1").exit_code == 0
    assert _invoke("activations", folder / "p1.png", "--layer", "mixed3a", *TINY, "-o", folder / "holiday.png").exit_code == 0
    cache = ["--cache", tmp_path / "cache", "--size", "64", "--cell", "40"]
    out = tmp_path / "top.png"
    result = CliRunner().invoke(main, [str(a) for a in ["top-images", folder, "--layer", "mixed3a:1", "--weights", "random", *cache, "-o", out]])
    assert result.exit_code == 0, result.output
    assert "not ranking 2 picture(s) dreamer made" in result.stderr
    ranked = {Path(hit["path"]).name for hit in _record(out)["top"]}
    assert ranked == {"p0.png", "p1.png", "p2.png"} and _record(out)["scanned"] == 3

    before = (folder / "p2.png").read_bytes()
    clash = _invoke("top-images", folder, "--layer", "mixed3a:1", *TINY, *cache, "--force", "-o", folder / "p2.png")
    assert clash.exit_code == 2 and "input" in clash.stderr, clash.output
    assert (folder / "p2.png").read_bytes() == before


def test_channels_from_and_count_are_not_ignored(loads, tmp_path):
    result = _invoke("channels", "--layer", "mixed3a:5,6", "--from", "10", *TINY, "-o", tmp_path / "c.png")
    assert result.exit_code == 2 and "--from" in result.stderr, result.output
    result = _invoke("channels", "--layer", "mixed3a:5", "--count", "4", *TINY, "-o", tmp_path / "c.png")
    assert result.exit_code == 2 and "--count" in result.stderr, result.output
    assert not (tmp_path / "c.png").exists()


# --- progress ---------------------------------------------------------------------------------------


def test_first_eta_leaves_out_the_warm_up(monkeypatch):
    """The first step took 100 s (warm-up), the next ones 1 s each: 58 steps are left after step 3."""
    from dreamer.cli import progress

    clock = iter([0.0, 100.0, 101.0, 102.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines = []
    monkeypatch.setattr(progress.click, "echo", lambda text="", **kw: lines.append(text))
    bar = progress.ProgressLine("x", delay=0)
    bar.tty = True
    bar.update(1, 61)  # t = 100: the warm-up step
    bar.update(2, 61)  # t = 101
    bar.update(3, 61)  # t = 102
    assert lines[0].endswith("ETA ..."), lines
    assert lines[1].endswith("ETA 59s") and lines[2].endswith("ETA 58s"), lines
