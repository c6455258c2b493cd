"""A hostile user against the command line: broken and odd images, outputs that clash with
inputs, absurd numbers, unknown names, poisoned presets and weights, closed or full standard
streams, Ctrl-C.

Every case asserts the exit code (0, 1 runtime, 2 usage), that a failure is one `Error:` line
(plus a `Hint:` line) and never a traceback, and that no file that existed before changed. In
process with click's CliRunner and the shared random network; the standard-stream and signal
cases run a real process.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from dreamer.cli import main

FAST = ["--weights", "random", "--layer", "mixed3a", "--octaves", "1", "--steps", "1", "--jitter", "2"]


@pytest.fixture
def loads(monkeypatch, network):
    """`load_model` answered by the shared random network for random weights (files load for real)."""
    from dreamer.models import load_model as real

    calls: list[str] = []

    def fake_load_model(name="googlenet", *, weights="pretrained", device="cpu", progress=False):
        calls.append(str(weights))
        if str(weights).startswith("random") and name == "googlenet":
            return network
        return real(name, weights=weights, device=device, progress=progress)

    monkeypatch.setattr("dreamer.models.load_model", fake_load_model)
    return calls


def _photo(path: Path, size=(80, 64), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BILINEAR).save(path)
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height, with one tiny (wrong) data chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 7)) + chunk(b"IEND", b""))
    return path


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def _check(result, code: int, *words: str) -> None:
    """Exit `code`; no traceback; a failure is exactly one `Error:` line containing `words`."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if code == 0:
        return
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    others = [line for line in lines if not line.startswith(("Error:", "Hint:", "Warning:", "Usage:", "Try "))]
    assert others == [], result.stderr
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A folder holding a good photo `a.png`, the current directory for the case."""
    (tmp_path / "work").mkdir()
    work = tmp_path / "work"
    _photo(work / "a.png")
    monkeypatch.chdir(work)
    return work


def _invoke(args: list) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _run_case(place: Path, args: list, code: int, words=(), *, new_files: bool | None = None):
    before = _snapshot(place)
    result = _invoke(args)
    _check(result, code, *words)
    after = _snapshot(place)
    changed = [name for name, digest in before.items() if after.get(name) != digest]
    assert changed == [], f"changed or removed: {changed}"
    if new_files is None:
        new_files = code == 0
    if not new_files:
        assert set(after) == set(before), f"left behind: {sorted(set(after) - set(before))}"
    return result


# --- broken and odd images ------------------------------------------------------------------------

IMAGE_COMMANDS = [
    ["run", *FAST],
    ["activations", "--layer", "mixed3a", "--weights", "random"],
    ["deconv", "--layer", "mixed3a:1", "--weights", "random"],
    ["occlusion", "--weights", "random", "--size", "64", "--stride", "32"],
]


def _bad_image(kind: str, folder: Path) -> tuple[str, int, str]:
    """(argument, exit code, a word of the message) for one kind of bad image."""
    if kind == "empty":
        (folder / "empty.png").write_bytes(b"")
        return "empty.png", 1, "empty.png"
    if kind == "text":
        (folder / "notes.jpg").write_text("not a picture\n")
        return "notes.jpg", 1, "notes.jpg"
    if kind == "directory":
        (folder / "dir.png").mkdir()
        return "dir.png", 2, "directory"
    if kind == "missing":
        return "nope.png", 2, "no such file"
    if kind == "one-pixel":
        Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "dot.png")
        return "dot.png", 1, "1x1"
    if kind == "zero-size-header":
        _png_header_only(folder / "zero.png", 0, 0)
        return "zero.png", 1, "zero.png"
    if kind == "huge-header":
        _png_header_only(folder / "huge.png", 100_000, 100_000)
        return "huge.png", 1, "huge.png"
    if kind == "truncated-png":
        data = (folder / "a.png").read_bytes()
        (folder / "cut.png").write_bytes(data[: len(data) // 2])
        return "cut.png", 1, "cut.png"
    if kind == "truncated-jpeg":
        Image.open(folder / "a.png").save(folder / "full.jpg", quality=90)
        data = (folder / "full.jpg").read_bytes()
        (folder / "cut.jpg").write_bytes(data[: len(data) // 3])
        return "cut.jpg", 1, "cut.jpg"
    if kind == "newline-in-name":
        (folder / "bad\nname.png").write_bytes(b"")
        return "bad\nname.png", 1, "bad\\nname.png"
    raise AssertionError(kind)


BAD_IMAGES = [
    "empty", "text", "directory", "missing", "one-pixel", "zero-size-header", "huge-header",
    "truncated-png", "truncated-jpeg", "newline-in-name",
]


@pytest.mark.parametrize("command", IMAGE_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_bad_images(loads, place, command, kind):
    arg, code, word = _bad_image(kind, place)
    if kind == "one-pixel" and command[0] == "occlusion":
        code, word = 0, ""  # occlusion scales every image to --size first: a 1x1 photo becomes 64x64
    _run_case(place, [command[0], arg, *command[1:]], code, [word] if word else [])


def test_a_bad_image_among_good_ones_is_reported_and_the_others_written(loads, place):
    _photo(place / "b.png", seed=3)
    (place / "empty.png").write_bytes(b"")
    result = _run_case(place, ["run", "a.png", "empty.png", "b.png", *FAST, "-q"], 1, ["empty.png"], new_files=True)
    assert (place / "a.dream.png").is_file() and (place / "b.dream.png").is_file()
    assert not (place / "empty.dream.png").exists(), result.output


@pytest.mark.parametrize("name", ["café ☕ 写真.png", "new\nline.png", "x" * 240 + ".png", "-dash.png", "spaced  name .png"])
def test_odd_but_valid_file_names_work(loads, place, name):
    _photo(place / name)
    before = _snapshot(place)
    result = _invoke(["run", *FAST, "-q", "--", name])
    _check(result, 0)
    made = sorted(set(_snapshot(place)) - set(before))
    assert len(made) == 1 and made[0].endswith(".dream.png"), made
    assert len(os.fsencode(made[0])) <= 255 - 12  # room for the temporary name beside it
    assert made[0].startswith(Path(name).stem[:50])


def test_a_noise_source_larger_than_max_pixels_is_refused(loads, place):
    _run_case(place, ["run", "noise:16384x16384", *FAST], 2, ["--max-pixels"])
    _run_case(place, ["run", "noise:64x64", "--max-pixels", "1000", *FAST], 2, ["64x64"])
    _run_case(place, ["run", "noise:0x64", *FAST], 2, ["noise:0x64"])
    _run_case(place, ["run", "noise:axb", *FAST], 2, ["noise:axb"])


# --- outputs ----------------------------------------------------------------------------------------


def test_output_equal_to_the_input_by_another_path_or_a_link(loads, place):
    os.symlink(place / "a.png", place / "link.png")
    (place / "sub").mkdir()
    for out in ["./a.png", "sub/../a.png", str(place / "a.png"), "link.png"]:
        _run_case(place, ["run", "a.png", *FAST, "-o", out], 2, ["input"])
        _run_case(place, ["run", "a.png", *FAST, "-o", out, "--force"], 2, ["input"])
    _run_case(place, ["activations", "a.png", "--weights", "random", "-o", "link.png", "-f"], 2, ["input"])


@pytest.mark.parametrize(
    ("output", "code", "word"),
    [
        ("y" * 300 + ".png", 1, "too long"),
        ("missing/out.png", 1, "does not exist"),
        ("out", 2, "no extension"),
        ("out.xyz", 2, ".xyz"),
        ("a.png/", 2, "not a folder"),
        ("z" * 300 + "/", 1, "too long"),
    ],
)
def test_bad_outputs(loads, place, output, code, word):
    _run_case(place, ["run", "a.png", *FAST, "-o", output], code, [word])


def test_an_existing_output_is_kept_and_numbered(loads, place):
    (place / "a.dream.png").write_bytes(b"the user's own file")
    _run_case(place, ["run", "a.png", *FAST, "-q"], 0)
    assert (place / "a.dream.png").read_bytes() == b"the user's own file"
    assert (place / "a.dream-2.png").is_file()
    _run_case(place, ["run", "a.png", *FAST, "-o", "a.dream.png"], 2, ["already exists"])


# --- numbers -----------------------------------------------------------------------------------------

NUMBERS = [
    ("--seed", "-1"), ("--seed", str(2**70)), ("--octaves", "0"), ("--octaves", "-1"), ("--steps", "0"),
    ("--steps", str(10**9)), ("--jitter", "-5"), ("--size", "0"), ("--size", str(10**12)), ("--max-pixels", "0"),
    ("--tile", "10"), ("--blur", "1e11"), ("--lr", "1e37"), ("--tv", "1e300"), ("--step-size", "1e300"),
    ("--octave-scale", "1"), ("--octaves", "abc"), ("--seed", "1.5"),
]
FLOATS = ["--octave-scale", "--step-size", "--tv", "--blur", "--lr"]


@pytest.mark.parametrize(("flag", "value"), NUMBERS + [(f, v) for f in FLOATS for v in ("nan", "inf", "-inf")])
def test_absurd_numbers_for_run(loads, place, flag, value):
    result = _run_case(place, ["run", "a.png", *FAST, flag, value], 2, [flag])
    assert loads == [], "refused before the model loads"
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["zoom", "noise:64x64", "--fps", "nan"],
        ["zoom", "noise:64x64", "--fps", "inf"],
        ["zoom", "noise:64x64", "--zoom", "nan"],
        ["zoom", "noise:64x64", "--rotate", "inf"],
        ["zoom", "noise:64x64", "--frames", "0"],
        ["zoom", "noise:64x64", "--lr", "nan"],
        ["channels", "--lr", "nan"],
        ["channels", "--seed", str(2**64)],
        ["channels", "--count", "0"],
        ["occlusion", "a.png", "--patch", "0"],
        ["activations", "a.png", "--top", "0"],
        ["top-images", ".", "--layer", "mixed3a:1", "--size", "8"],
        ["bench", "--size-scale", "nan"],
        ["bench", "--size-scale", "-inf"],
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:]),
)
def test_absurd_numbers_elsewhere(loads, place, args):
    _run_case(place, [*args, "--weights", "random"], 2, [args[-2]])
    assert loads == []


# --- unknown names ------------------------------------------------------------------------------------

UNKNOWN = [
    ["run", "a.png", *FAST, "--layer", "mixed9q"],
    ["run", "a.png", *FAST, "--class", "bananna"],
    ["run", "a.png", *FAST, "--class", "1000"],
    ["run", "a.png", *FAST, "--class", "-1"],
    ["run", "a.png", *FAST, "--model", "googlenett"],
    ["run", "a.png", *FAST, "--preset", "hi-level"],
    ["run", "a.png", *FAST, "--layer", "mixed3a:99999"],
    ["run", "a.png", *FAST, "--layer", "mixed3a=nan"],
    ["run", "a.png", *FAST, "--device", "tpu"],
    ["zoom", "noise:64x64", "--weights", "random", "--layer", "mixed9q"],
    ["zoom", "noise:64x64", "--weights", "random", "--preset", "nope"],
    ["activations", "a.png", "--weights", "random", "--layer", "nolayer"],
    ["deconv", "a.png", "--weights", "random", "--layer", "mixed3a"],
    ["top-images", ".", "--weights", "random", "--layer", "nolayer:1"],
    ["occlusion", "a.png", "--weights", "random", "--class", "zebraa"],
    ["channels", "--weights", "random", "--layer", "nolayer"],
    ["filters", "--weights", "random", "--layer", "nolayer"],
    ["layers", "--model", "nomodel"],
    ["classes", "--model", "nomodel"],
    ["classes", "1000"],
    ["presets", "show", "nope"],
    ["nosuchcommand"],
    ["run", "a.png", "--no-such-flag"],
]


@pytest.mark.parametrize("args", UNKNOWN, ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_unknown_names_are_usage_errors(loads, place, args):
    _run_case(place, args, 2)
    assert loads == []


def test_duplicate_and_hundreds_of_layer_terms(loads, place):
    _run_case(place, ["run", "a.png", *FAST, "-l", "mixed3a", "-l", "mixed3a", "-q", "-o", "dup.png"], 0)
    terms = [arg for c in range(256) for arg in ("-l", f"mixed3a:{c}")]
    terms += [arg for c in range(0, 480, 3) for arg in ("-l", f"mixed3b:{c}=0.5")]
    _run_case(place, ["run", "a.png", *FAST, *terms, "-q", "-o", "many.png"], 0)
    assert (place / "many.png").is_file()


# --- presets and weights -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "word"),
    [
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested"),
        ("layers = [\n", 1, "bad.toml"),
        ("\x00\x01\x02 binary", 1, "bad.toml"),
        ("octaves = -3\n", 1, "octaves"),
        ("no_such_key = 1\n", 1, "no_such_key"),
    ],
    ids=["deeply-nested", "unterminated", "binary", "bad-value", "unknown-key"],
)
def test_bad_preset_files(loads, place, text, code, word):
    (place / "bad.toml").write_text(text)
    _run_case(place, ["run", "a.png", *FAST, "--preset", "bad.toml"], code, [word])


def test_a_preset_whose_dream_diverges_is_an_error_not_a_black_picture(loads, place):
    (place / "wild.toml").write_text('layers = ["mixed3a"]\nparam = "fft"\nsteps = 3\nlearning_rate = 1e37\n')
    _run_case(place, ["run", "noise:64x64", "--weights", "random", "--preset", "wild.toml", "-o", "w.png"], 1, ["--lr", "NaN"])


def test_a_preset_asking_for_more_memory_than_exists(loads, place):
    (place / "huge.toml").write_text('layers = ["mixed3a"]\nsteps = 1\nparam = "fft"\nblur = 1e11\n')
    _run_case(place, ["run", "noise:64x64", "--weights", "random", "--preset", "huge.toml", "-o", "h.png"], 1, ["memory"])


def test_weights_with_nan_values_are_refused_by_name(loads, place, network):
    state = {k: v.clone() for k, v in network.module.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    state[name][0, 0, 0, 0] = float("nan")
    torch.save(state, place / "nan.pth")
    _run_case(place, ["run", "a.png", "--weights", "nan.pth", "--layer", "mixed3a", "--steps", "1", "--octaves", "1"], 1, ["NaN", name])


class _Exploit:
    """Unpickling this would create a marker file: a weights file that runs code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_weights_file_whose_pickle_would_run_code_runs_nothing(loads, place):
    marker = place / "pwned"
    torch.save({"conv1.conv.weight": _Exploit(str(marker))}, place / "evil.pth")
    _run_case(place, ["run", "a.png", "--weights", "evil.pth", "--layer", "mixed3a"], 1, ["evil.pth"])
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "directory"])
def test_unusable_weights_files(loads, place, network, kind):
    path = place / "w.pth"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello")
    elif kind == "truncated":
        torch.save(network.module.state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    else:
        path.mkdir()
    result = _invoke(["run", "a.png", "--weights", "w.pth", "--layer", "mixed3a"])
    assert result.exit_code in (1, 2), result.output
    _check(result, result.exit_code, "w.pth")


# --- standard streams and signals (real processes) ------------------------------------------------------


def _dreamer(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "dreamer", *args], cwd=cwd, env=env, timeout=300, **kwargs)


@pytest.mark.parametrize("streams", ["stderr-closed", "stderr-full+stdout-closed"])
def test_closed_or_full_standard_streams_do_not_stop_the_picture(place, streams):
    """`2>&-`, `2>/dev/full`, `>&-`: progress, the warning and the printed path are lost, the
    picture is not (and nothing meant for stderr lands in a file that took its descriptor)."""
    args = ["run", "a.png", *FAST, "-o", "out.png"]  # not quiet: the warning and the path try to write
    if streams == "stderr-closed":
        done = _dreamer(args, place, stdout=subprocess.PIPE, preexec_fn=lambda: os.close(2))
        assert done.stdout.decode().strip() == "out.png"
    else:
        with open("/dev/full", "w") as full:
            done = _dreamer(args, place, stderr=full, preexec_fn=lambda: os.close(1))
    assert done.returncode == 0
    with Image.open(place / "out.png") as img:
        assert img.size == (80, 64)
        img.load()
    assert sorted(p.name for p in place.iterdir()) == ["a.png", "out.png"]


def test_ctrl_c_stops_cleanly_and_leaves_nothing(place):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dreamer", "run", "noise:64x64", "--weights", "random", "--layer", "mixed3a",
         "--steps", "100000", "-o", "never.png"],
        cwd=place, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        line = proc.stderr.readline()  # the random-weights warning: the model is loaded, dreaming starts
        assert b"Warning" in line, line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"Interrupted" in err
    assert sorted(p.name for p in place.iterdir()) == ["a.png"]
