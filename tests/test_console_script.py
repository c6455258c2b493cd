"""The installed `dreamer` console script, run as a real subprocess, and import-time costs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import dreamer

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "chelsea.png"


def _script() -> str:
    beside = Path(sys.executable).parent / "dreamer"
    if beside.exists():
        return str(beside)
    found = shutil.which("dreamer")
    if found is None:
        pytest.fail("the `dreamer` console script is not installed (pip install -e .)")
    return found


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TORCH_HOME"] = str(tmp_path / "torch_home")  # never the user's cache, never a download
    return env


def test_console_script_dreams_on_a_bundled_sample(tmp_path):
    src = tmp_path / "chelsea.png"
    shutil.copy(SAMPLE, src)
    result = subprocess.run(
        [_script(), "run", str(src), "--weights", "random", "--size", "64", "--octaves", "1", "--steps", "1"],
        capture_output=True, text=True, env=_env(tmp_path), timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "chelsea.dream.png"
    assert result.stdout.strip() == str(out)
    assert "Warning: using untrained weights" in result.stderr
    assert "Traceback" not in result.stderr
    with Image.open(SAMPLE) as original, Image.open(out) as img:
        assert img.format == "PNG" and max(img.size) == 64
        w, h = original.size
        assert img.size == (round(w * 64 / max(w, h)), round(h * 64 / max(w, h)))
        record = json.loads(img.text["dreamer"])
    assert record["weights"] == "random:0" and record["dreamer_version"] == dreamer.__version__
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "torch_home") == ["chelsea.dream.png", "chelsea.png"]


def test_console_script_error_exit_code(tmp_path):
    result = subprocess.run(
        [_script(), "run", str(tmp_path / "missing.png")], capture_output=True, text=True, env=_env(tmp_path), timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-2:] == [
        f"Error: no such file: {tmp_path / 'missing.png'}",
        "Hint: give an image file, or noise:WIDTHxHEIGHT",
    ]


def test_python_dash_m(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dreamer", "--version"], capture_output=True, text=True, env=_env(tmp_path), timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"dreamer, version {dreamer.__version__}"


HEAVY = ("torch", "torchvision", "numpy", "PIL", "av")


def _imported_after(code: str) -> set[str]:
    probe = (
        "import sys\n"
        f"{code}\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("HEAVY:")][-1]
    return {m for m in line[len("HEAVY:"):].split(",") if m}


def test_importing_the_cli_stays_light():
    """`dreamer --help` is instant: no torch (or other heavy library) at import time."""
    assert _imported_after("import dreamer, dreamer.cli") == set()


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["--version"]])
def test_help_does_not_import_torch(args):
    code = (
        "from dreamer.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
    )
    assert _imported_after(code) == set()
