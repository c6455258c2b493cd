"""Jobs files for `dreamer zoom --jobs FILE`: one video per line.

Format (UTF-8 text)::

    # SOURCE          PRESET        OUTPUT              [KEY=VALUE ...]
    photo.jpg         -             photo.mp4
    noise:256x256     high-level    noise.gif           seed=7 frames=120 zoom=1.02:1.06
    "my photo.png"    -             "out/my zoom.webp"  layer=mixed3b layer=mixed4c=0.5

- Fields are separated by spaces or tabs; quote a field that contains spaces (shell rules).
  ``#`` starts a comment; blank lines are skipped.
- SOURCE: an image file or ``noise:WIDTHxHEIGHT``. PRESET: a preset name or file, or ``-``
  for none (the command line's flags and --preset apply). OUTPUT: ``.mp4``, ``.gif``,
  ``.webp`` or a folder of PNG frames.
- Relative paths (sources, outputs, preset files ending in ``.toml``) are relative to the
  folder of the jobs file, not to the current folder.
- Optional KEY=VALUE settings override the command line for that video: ``seed``, ``frames``,
  ``fps``, ``zoom`` and ``rotate`` (a number or START:END), ``shift`` (DX,DY), and ``layer`` /
  ``class`` (repeatable; they replace the command line's layers and classes).

Errors name the file and line (``jobs.txt:3: ...``). Parsing reads only the jobs file itself;
whether sources exist and values are in range is checked by the command, which reports
those errors with the job's file and line too (`Job.where`).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError, closest

__all__ = ["Job", "JobsFileError", "KEYS", "parse_jobs", "parse_jobs_text"]

#: The KEY=VALUE settings a job line may carry.
KEYS = ("seed", "frames", "fps", "zoom", "rotate", "shift", "layer", "class")
_REPEATABLE = ("layer", "class")


class JobsFileError(UsageError):
    """A jobs file that cannot be used; the message starts with ``FILE:LINE:``."""

    def __init__(self, path: Path | str, line: int | None, message: str, *, hint: str | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = Path(path)
        self.line = line


@dataclass(frozen=True)
class Job:
    """One video of a jobs file. Unset settings (None, or empty tuples) come from the command line."""

    path: Path
    line: int
    source: str
    preset: str | None
    output: Path
    seed: int | None = None
    frames: int | None = None
    fps: float | None = None
    zoom: str | None = None
    rotate: str | None = None
    shift: str | None = None
    layers: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """``FILE:LINE``, to prefix messages about this job."""
        return f"{self.path}:{self.line}"


def _int(path: Path, line: int, key: str, text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise JobsFileError(path, line, f"{key}={text!r} is not a whole number") from None
    if value < low:
        raise JobsFileError(path, line, f"{key}={text!r} must be at least {low}")
    return value


def _relative(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def parse_jobs_text(text: str, path: Path | str = "<jobs>") -> list[Job]:
    """The jobs in `text` (the contents of the jobs file at `path`), in file order."""
    path = Path(path)
    base = path.parent
    jobs: list[Job] = []
    outputs: dict[Path, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            fields = shlex.split(raw, comments=True)
        except ValueError as exc:  # an unclosed quote
            raise JobsFileError(path, number, f"cannot split the line into fields: {exc}") from None
        if not fields:
            continue
        positional = [f for f in fields[:3] if "=" not in f or f.startswith("noise:")]
        if len(fields) < 3 or len(positional) < 3:
            raise JobsFileError(
                path, number, f"expected SOURCE PRESET OUTPUT [KEY=VALUE ...], got {len(positional)} of the 3 fields",
                hint="use - as PRESET for none, e.g.: photo.jpg - photo.mp4",
            )
        source_text, preset_text, output_text = fields[:3]
        settings: dict[str, object] = {"layer": [], "class": []}
        for item in fields[3:]:
            key, sep, value = item.partition("=")
            if not sep:
                raise JobsFileError(path, number, f"unexpected field {item!r}; settings are KEY=VALUE")
            if key not in KEYS:
                near = closest(key, KEYS)
                hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(KEYS)}"
                raise JobsFileError(path, number, f"unknown setting {key!r}", hint=hint)
            if not value:
                raise JobsFileError(path, number, f"{key}= has no value")
            if key in _REPEATABLE:
                settings[key].append(value)  # type: ignore[union-attr]
                continue
            if key in settings:
                raise JobsFileError(path, number, f"{key} is given twice")
            if key == "seed":
                settings[key] = _int(path, number, key, value, 0)
            elif key == "frames":
                settings[key] = _int(path, number, key, value, 1)
            elif key == "fps":
                try:
                    fps = float(value)
                except ValueError:
                    fps = math.nan
                if not (math.isfinite(fps) and fps > 0):
                    raise JobsFileError(path, number, f"fps={value!r} must be a number > 0")
                settings[key] = fps
            else:  # zoom, rotate, shift: checked with the other settings when the video is set up
                settings[key] = value
        source = source_text if source_text.startswith("noise:") else str(_relative(base, source_text))
        preset: str | None = None
        if preset_text != "-":
            preset = str(_relative(base, preset_text)) if preset_text.lower().endswith(".toml") else preset_text
        output = _relative(base, output_text)
        key_path = output.resolve()
        if key_path in outputs:
            raise JobsFileError(
                path, number, f"output {output_text!r} is already written by line {outputs[key_path]}",
                hint="give each job its own output",
            )
        outputs[key_path] = number
        jobs.append(
            Job(
                path=path, line=number, source=source, preset=preset, output=output,
                seed=settings.get("seed"), frames=settings.get("frames"), fps=settings.get("fps"),  # type: ignore[arg-type]
                zoom=settings.get("zoom"), rotate=settings.get("rotate"), shift=settings.get("shift"),  # type: ignore[arg-type]
                layers=tuple(settings["layer"]), classes=tuple(settings["class"]),  # type: ignore[arg-type]
            )
        )
    if not jobs:
        raise JobsFileError(path, None, "no jobs in the file", hint="one line per video: SOURCE PRESET OUTPUT")
    return jobs


def parse_jobs(path: Path | str) -> list[Job]:
    """Read and parse a jobs file (see the module docstring for the format)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"jobs file {str(path)!r} is a folder")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such jobs file: {path}") from None
    except UnicodeDecodeError as exc:
        raise JobsFileError(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"cannot read jobs file {str(path)!r}: {exc.strerror or exc}") from None
    return parse_jobs_text(text, path)
