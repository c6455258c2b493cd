"""Frame stores and video files: the file side of zoom (and any frame-by-frame) videos.

A run writes each finished frame as a numbered PNG into a frame store folder, one atomic
write per frame, so an interrupted run keeps its work and can be resumed. The final file
(.mp4, .gif, .webp) is encoded from the store, also atomically. Frames are uint8 numpy
arrays (H, W, 3) RGB. Pillow and PyAV are used only here and in `images.py`; PyAV is
imported lazily, so it is only needed for .mp4.

What is whose. A store belongs to dreamer when its ``manifest.json`` carries a dreamer
signature (a ``format`` starting with ``"dreamer "``); then its ``frame_NNNNNN.png`` files
and dreamer's temporary files are dreamer's too. Anything else in the folder (a user's
manifest.json, photos, frames without a dreamer manifest, sub-folders) is foreign: it is
never deleted or overwritten (`StoreSurvey.foreign` lists it; `FrameStore.clear` leaves it).

MP4 encoding is a pure function of the frames: the RGB -> yuv420p conversion is done
explicitly (single-threaded swscale) and libx264 runs with a fixed thread count and, on
CPUs with AVX-512, with its AVX2 code: its AVX-512 code gave run-to-run different output
for identical input on such CPUs (see docs/zoom.md, "Reproducible videos").
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import math
import os
import platform
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, PngImagePlugin

from ..errors import EncoderError, ImageError, OutputError, OutputExistsError, UsageError
from .atomic import atomic_path, is_temp_name, os_error_message, temp_path, write_text
from .locks import is_lock_name

__all__ = [
    "VIDEO_EXTENSIONS", "STORE_SUFFIX", "MANIFEST_NAME", "MIN_FPS", "MAX_FPS",
    "FrameStore", "StoreSurvey", "ForeignFilesError", "output_kind", "frame_store_path", "partial_path",
    "prepare_output", "is_dreamer_manifest",
    "check_fps", "check_encoder", "encode", "count_frames", "read_frames",
]

VIDEO_EXTENSIONS = (".mp4", ".gif", ".webp")
STORE_SUFFIX = ".frames"
MANIFEST_NAME = "manifest.json"
#: A manifest whose ``format`` starts with this was written by dreamer.
SIGNATURE_PREFIX = "dreamer "
#: Frame rates outside this range are refused (a GIF/WebP frame lasts at least 1 ms, an MP4
#: time base needs a positive rate).
MIN_FPS = 0.01
MAX_FPS = 1000.0
_FRAME_RE = re.compile(r"frame_(\d{6,})\.png")
# files an operating system's file browser drops into folders: never a reason to refuse a
# folder, never deleted
_NEUTRAL = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "._.DS_Store"})
_X264_THREADS = "4"  # fixed, so the bytes do not depend on how many CPUs this machine has


def output_kind(path: Path | str) -> str:
    """"mp4", "gif", "webp", or "frames" (a folder of PNGs: no suffix, an existing folder, or `*.frames`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in ("", STORE_SUFFIX):
        return "frames"
    if suffix in VIDEO_EXTENSIONS:
        return suffix[1:]
    raise UsageError(f"cannot write a video to {str(path)!r}: unknown extension {path.suffix!r} "
                     "(allowed: a folder, .mp4, .gif or .webp)")


def frame_store_path(output: Path | str) -> Path:
    """The frame store of `output`: the folder itself, or the sibling `<name>.frames`."""
    output = Path(output)
    if output_kind(output) == "frames":
        return output
    return output.with_name(output.name + STORE_SUFFIX)


def partial_path(output: Path | str) -> Path:
    """Where the partial result of an unfinished run goes, beside `output`:
    ``out.mp4`` -> ``out.partial.mp4``; a frames folder ``out`` -> ``out.partial``."""
    output = Path(output)
    if output_kind(output) == "frames":
        return output.with_name(output.name + ".partial")
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def partial_record(path: Path) -> dict[str, Any] | None:
    """What a store's manifest records of the partial result its run wrote at `path` (name,
    size, modification time), or None when there is no file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def partial_is_ours(path: Path, manifest: dict[str, Any] | None) -> bool:
    """Whether the file at `path` is the partial result this store's run wrote (unchanged)."""
    record = (manifest or {}).get("partial")
    return isinstance(record, dict) and record == partial_record(path)


def is_dreamer_manifest(data: Any) -> bool:
    """Whether `data` (a parsed manifest) carries dreamer's signature."""
    return isinstance(data, dict) and isinstance(data.get("format"), str) and data["format"].startswith(SIGNATURE_PREFIX)


@dataclass
class StoreSurvey:
    """What a store folder holds, sorted by owner (see the module docstring)."""

    exists: bool = False
    is_dir: bool = False
    manifest: dict | None = None  # dreamer's manifest, parsed
    frames: dict[int, Path] = field(default_factory=dict)
    temps: list[Path] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # names dreamer did not write

    @property
    def ours(self) -> bool:
        """A dreamer store: its manifest carries the signature."""
        return self.manifest is not None

    @property
    def empty(self) -> bool:
        """Nothing in it but dreamer's temporary files and file-browser litter (or no folder)."""
        return not self.frames and not self.foreign and self.manifest is None

    def foreign_text(self, limit: int = 4) -> str:
        names = sorted(self.foreign)
        shown = ", ".join(names[:limit])
        return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class FrameStore:
    """A folder of `frame_000000.png`, `frame_000001.png`, ... plus `manifest.json`."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"FrameStore({str(self.folder)!r})"

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_NAME

    def frame_path(self, index: int) -> Path:
        return self.folder / f"frame_{index:06d}.png"

    def _frame_files(self) -> dict[int, Path]:
        try:
            names = os.listdir(self.folder)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        return {int(m.group(1)): self.folder / n for n in names if (m := _FRAME_RE.fullmatch(n))}

    def survey(self) -> StoreSurvey:
        """Sort the folder's entries into dreamer's and foreign ones (reads the manifest)."""
        survey = StoreSurvey(exists=self.folder.exists() or self.folder.is_symlink(), is_dir=self.folder.is_dir())
        if not survey.is_dir:
            return survey
        try:
            names = os.listdir(self.folder)
        except OSError as exc:
            raise OutputError(f"cannot read the folder {str(self.folder)!r}: {exc.strerror or exc}") from exc
        frames: dict[int, Path] = {}
        for name in names:
            path = self.folder / name
            if name == MANIFEST_NAME and path.is_file() and not path.is_symlink():
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = None
                if is_dreamer_manifest(data):
                    survey.manifest = data
                else:
                    survey.foreign.append(name)
            elif (m := _FRAME_RE.fullmatch(name)) and path.is_file() and not path.is_symlink():
                frames[int(m.group(1))] = path
            elif is_temp_name(name) and not path.is_dir():
                survey.temps.append(path)
            elif is_lock_name(name):
                continue  # another output's lock (frames folders can hold outputs): left to its owner
            elif name not in _NEUTRAL:
                survey.foreign.append(name)
        if survey.manifest is None:
            survey.foreign.extend(p.name for p in frames.values())  # frames of unknown origin
        else:
            survey.frames = frames
        return survey

    def count(self) -> int:
        """Number of consecutive finished frames from 0 (a gap ends the count; temp files don't count)."""
        present = self._frame_files()
        n = 0
        while n in present:
            n += 1
        return n

    def paths(self, count: int | None = None) -> list[Path]:
        """Paths of the finished frames in order (the first `count` of them, if given)."""
        n = self.count() if count is None else min(count, self.count())
        return [self.frame_path(i) for i in range(n)]

    def write(self, index: int, frame: np.ndarray, metadata: dict[str, str] | None = None) -> Path:
        """Write frame `index` atomically; `metadata` goes in PNG text chunks.

        A failure (a full disk ...) raises `OutputError` and leaves every earlier frame as it was."""
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        image = Image.fromarray(_check_frame(frame), "RGB")
        info = PngImagePlugin.PngInfo()
        for key, value in (metadata or {}).items():
            info.add_text(str(key), str(value))
        final = self.frame_path(index)
        try:
            with atomic_path(final) as tmp:
                image.save(tmp, format="PNG", pnginfo=info)
        except OutputError as exc:
            raise OutputError(f"frame {index}: {exc.message}",
                              hint=f"the frames before it are kept in {self.folder}") from exc.__cause__
        return final

    def read(self, index: int) -> np.ndarray:
        """Frame `index` as uint8 (H, W, 3) RGB."""
        return _read_png(self.frame_path(index))

    def clear(self, *, remove_folder: bool | None = None) -> None:
        """Remove dreamer's files (frames and temporary files, the manifest if it is dreamer's),
        never anything else; then the folder itself if it is left empty and `remove_folder`
        (None: if it is a ``*.frames`` folder). Frames are only removed from a store with a
        dreamer manifest: frames of unknown origin are not dreamer's to delete."""
        survey = self.survey()
        if not survey.is_dir:
            return
        for path in [*survey.frames.values(), *survey.temps]:
            _unlink(path)
        if survey.manifest is not None:
            _unlink(self.manifest_path)
        if remove_folder is None:
            remove_folder = self.folder.name.endswith(STORE_SUFFIX)
        if remove_folder:
            try:
                self.folder.rmdir()
            except OSError:
                pass  # something foreign (or a file browser's litter) is left: keep the folder

    def write_manifest(self, manifest: dict) -> None:
        """Record the run's settings (JSON, atomic). It must carry dreamer's signature, so the
        store is recognised as dreamer's from then on."""
        if not is_dreamer_manifest(manifest):
            raise ValueError(f"a manifest needs a 'format' starting with {SIGNATURE_PREFIX!r}")
        write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def read_manifest(self) -> dict | None:
        """dreamer's recorded settings, or None when there is no manifest or it is not dreamer's."""
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return data if is_dreamer_manifest(data) else None


class ForeignFilesError(OutputExistsError):
    """An output folder or frame store holds files dreamer did not write (exit code 2)."""


def foreign_files_error(folder: Path, survey: StoreSurvey, what: str = "the folder") -> ForeignFilesError:
    return ForeignFilesError(
        f"{what} {str(folder)!r} holds files dreamer did not write ({survey.foreign_text()}); "
        "dreamer never overwrites or deletes them",
        hint="choose a new or empty folder for -o, or move those files away",
    )


def prepare_output(output: Path | str, *, force: bool, resume: bool) -> FrameStore:
    """Check that `output` can be written before any work starts; create and return its frame
    store (a single-video helper; `dreamer.zoom.session` also locks the output and keeps a
    finished frames folder until its replacement is complete).

    A store holding files dreamer did not write is refused (`ForeignFilesError`), whatever
    the flags. With `force` (and not `resume`) dreamer's old frames are cleared; an old
    final file stays until `encode` replaces it. With `resume` existing frames are kept.
    """
    output = Path(output)
    kind = output_kind(output)
    store = FrameStore(frame_store_path(output))
    parent = output.parent
    if not parent.is_dir():
        problem = "is not a folder" if parent.exists() else "does not exist"
        raise OutputError(f"cannot write {str(output)!r}: folder {str(parent)!r} {problem}")
    if store.folder.exists() and not store.folder.is_dir():
        what = "the output folder" if kind == "frames" else "the frame store folder"
        raise OutputError(f"{str(store.folder)!r} is a file, but {what} must go there")
    if kind != "frames" and output.is_dir():
        raise OutputError(f"{str(output)!r} is a folder; a {kind} file cannot be written there")
    survey = store.survey()
    if survey.foreign:
        raise foreign_files_error(store.folder, survey,
                                  "the output folder" if kind == "frames" else "the frame store")
    if not (force or resume):
        if kind != "frames" and output.exists():
            raise OutputExistsError(f"{str(output)!r} already exists",
                                    hint="use --force to overwrite it, or --resume to continue its run")
        if survey.frames:
            raise OutputExistsError(f"{str(store.folder)!r} already holds frames of an earlier run",
                                    hint="use --resume to continue that run, or --force to start over")
    if force and not resume:
        store.clear(remove_folder=False)
    try:
        store.folder.mkdir(exist_ok=True)
        probe = temp_path(store.folder / "probe")  # as root, permission bits say little: try it
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(os_error_message(store.folder, exc)) from exc
    return store


def swap_frames_folder(output: Path, new: Path) -> FrameStore:
    """Replace a frames-folder `output` (dreamer's frames of an earlier run, or nothing) by the
    complete folder of new frames `new`: two renames, then the old frames are removed. Files that
    are not dreamer's (a file browser's litter) move into the new folder rather than being lost.
    On failure the old output is put back and an OutputError says where the new frames are.
    Returns the frame store now at `output`."""
    output, new = Path(output), Path(new)
    aside: Path | None = temp_path(output)
    try:
        os.rename(output, aside)
    except FileNotFoundError:
        aside = None
    except OSError as exc:
        raise OutputError(f"cannot replace {str(output)!r} with {str(new)!r}: {exc.strerror or exc}") from exc
    try:
        os.rename(new, output)
    except OSError as exc:
        if aside is not None:
            with contextlib.suppress(OSError):
                os.rename(aside, output)
        raise OutputError(f"cannot move {str(new)!r} to {str(output)!r}: {exc.strerror or exc}",
                          hint=f"the new frames are in {new}") from exc
    if aside is not None:
        FrameStore(aside).clear()
        for name in os.listdir(aside):
            with contextlib.suppress(OSError):
                os.replace(aside / name, output / name)
        with contextlib.suppress(OSError):
            aside.rmdir()
    return FrameStore(output)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB")).copy()
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read frame {str(path)!r}: {' '.join(str(exc).split())}") from None


def _check_frame(frame: np.ndarray) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise ValueError(f"a frame must be uint8 (H, W, 3), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def _frames(frames: Iterable[np.ndarray] | Iterable[Path]) -> Iterator[np.ndarray]:
    """Arrays from arrays or PNG paths (read lazily), all of the first frame's size."""
    shape = None
    for item in frames:
        if isinstance(item, (str, os.PathLike)):
            item = _read_png(Path(item))
        array = _check_frame(item)
        if shape is None:
            shape = array.shape
        elif array.shape != shape:
            raise EncoderError(f"frames differ in size: {shape[1]}x{shape[0]} then {array.shape[1]}x{array.shape[0]}")
        yield array


def check_fps(fps: float, kind: str | None = None) -> float:
    """`fps` as a float if a video can be encoded at that rate; `ConfigError` (exit 2) otherwise."""
    from ..errors import ConfigError

    allowed = f"frames per second from {MIN_FPS:g} to {MAX_FPS:g}, e.g. 30"
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps):
        raise ConfigError("fps", fps, allowed)
    if not MIN_FPS <= fps <= MAX_FPS:
        raise ConfigError("fps", fps, allowed)
    return float(fps)


def check_encoder(kind: str, fps: float = 30.0) -> None:
    """Encode a tiny clip of `kind` at `fps` in memory, so that a missing encoder library or a
    rate the encoder refuses is found before any work (nothing touches the file system)."""
    if kind == "frames":
        return
    fps = check_fps(fps)
    frames = [np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 255, np.uint8)]
    buffer = io.BytesIO()
    try:
        _WRITERS[kind](frames[0], iter(frames[1:]), buffer, fps, kind)
    except EncoderError:
        raise
    except (ValueError, OverflowError, ZeroDivisionError, OSError) as exc:
        raise UsageError(f"cannot encode {kind.upper()} at {fps:g} frames per second: {exc}") from None


def encode(frames: Iterable[np.ndarray] | Iterable[Path], output: Path | str, *, fps: float,
           kind: str | None = None, expect: int | None = None) -> Path:
    """Encode `frames` into `output` atomically and return `output`.

    mp4: H.264 yuv420p; odd widths/heights are padded to even by repeating the last
    column/row (never cropped). gif: 256-colour palette per frame, durations in 10 ms
    steps; Pillow merges identical consecutive frames. webp: lossy, quality 90 (identical
    consecutive frames are merged too). kind "frames": nothing to do, the store is the output.

    `expect`: the number of frames the video must have; the encoded file is read back and
    anything else is an `EncoderError` (the old `output`, if any, is then left as it was).
    """
    output = Path(output)
    kind = kind or output_kind(output)
    if kind == "frames":
        return output
    fps = check_fps(fps)
    writer = _WRITERS.get(kind)
    if writer is None:
        raise UsageError(f"unknown video kind {kind!r} (allowed: frames, mp4, gif, webp)")
    iterator = _frames(frames)
    first = next(iterator, None)
    if first is None:
        raise EncoderError(f"no frames to encode into {str(output)!r}")
    fed = _Counter(itertools.chain([first], iterator))
    with atomic_path(output) as tmp:
        writer(next(fed), fed, tmp, fps, kind)
        if expect is not None:
            if fed.count != expect:
                raise EncoderError(f"{fed.count} frames were given for {str(output)!r}, not {expect}")
            _check_count(tmp, kind, expect, fps, output)
    return output


class _Counter:
    """An iterator that counts what it hands out."""

    def __init__(self, iterable: Iterable[np.ndarray]) -> None:
        self._it = iter(iterable)
        self.count = 0

    def __iter__(self) -> _Counter:
        return self

    def __next__(self) -> np.ndarray:
        item = next(self._it)
        self.count += 1
        return item


def _write_pillow(first: np.ndarray, frames: Iterator[np.ndarray], path: Path | io.BytesIO, fps: float,
                  kind: str) -> None:
    images = (Image.fromarray(f, "RGB") for f in frames)  # lazily: Pillow pulls them one by one
    options = {"lossless": False, "quality": 90} if kind == "webp" else {}
    try:
        Image.fromarray(first, "RGB").save(
            path, format=kind.upper(), save_all=True, append_images=images,
            duration=max(1, round(1000 / fps)), loop=0, **options)
    except (ValueError, KeyError) as exc:  # e.g. Pillow built without WebP
        raise EncoderError(f"cannot encode {kind.upper()}: {exc}") from exc


def _video_codec(av) -> str:
    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # codec not built into this PyAV
            continue
    raise EncoderError("this PyAV has no H.264 or MPEG-4 encoder", hint="pip install --upgrade av")


def _cpu_flags() -> set[str]:
    """The CPU's feature flags where the system says them cheaply (Linux); else empty."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=1)
def _x264_asm() -> str | None:
    """The instruction sets libx264 may use: "AVX2" on x86 CPUs with AVX-512 (whose x264
    code gave different bytes from run to run for identical frames), else None (x264's own
    choice). Forcing AVX2 is only done where the CPU certainly has it."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    flags = _cpu_flags()
    if "avx512f" in flags and {"avx2", "fma", "bmi1", "bmi2"} <= flags:
        return "AVX2"
    return None


def _x264_options() -> dict[str, str]:
    options = {"crf": "18", "threads": _X264_THREADS}
    asm = _x264_asm()
    if asm:
        options["x264-params"] = f"asm={asm}"
    return options


def _write_mp4(first: np.ndarray, frames: Iterator[np.ndarray], path: Path | io.BytesIO, fps: float,
               kind: str) -> None:
    try:
        import av
    except ImportError as exc:
        raise EncoderError("writing MP4 needs PyAV: pip install av",
                           hint="or write .gif, .webp or a folder of PNG frames") from exc
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"{fps:g} frames per second has no MP4 frame rate")
    codec = _video_codec(av)
    height, width = first.shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))  # yuv420p needs even sizes: repeat the edge
    try:
        with av.open(path if isinstance(path, io.BytesIO) else str(path), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            stream.time_base = 1 / rate
            if stream.codec_context.name == "libx264":
                stream.options = _x264_options()
            else:
                stream.bit_rate = 8_000_000
                stream.options = {"threads": "1"}
            for index, frame in enumerate(itertools.chain([first], frames)):
                rgb = av.VideoFrame.from_ndarray(np.pad(frame, pad, mode="edge"), format="rgb24")
                # converted here, single-threaded, rather than inside encode() with the
                # codec's thread count: the frame handed to the encoder is fixed by the pixels
                yuv = rgb.reformat(format="yuv420p", threads=1)
                yuv.pts = index
                yuv.time_base = 1 / rate
                container.mux(stream.encode(yuv))
            container.mux(stream.encode(None))  # flush delayed frames
    except OSError:  # PyAV's file errors are OSErrors too: a missing folder, a full disk ...
        raise
    except av.FFmpegError as exc:
        raise EncoderError(f"{codec} failed to encode MP4: {exc}") from exc


_WRITERS = {"mp4": _write_mp4, "gif": _write_pillow, "webp": _write_pillow}


def count_frames(path: Path | str, kind: str | None = None) -> tuple[int, int | None]:
    """(frames stored, total duration in ms or None) of a video file, without decoding
    pixels where possible. GIF and WebP merge identical consecutive frames, so their stored
    count can be smaller than the frames given; the total duration still adds up."""
    path = Path(path)
    kind = kind or output_kind(path)
    if kind == "frames":
        return FrameStore(path).count(), None
    if kind == "mp4":
        try:
            import av
        except ImportError as exc:
            raise EncoderError("reading MP4 needs PyAV: pip install av") from exc
        try:
            with av.open(str(path)) as container:
                return sum(1 for p in container.demux(video=0) if p.size), None
        except (OSError, av.FFmpegError) as exc:
            raise ImageError(f"cannot read {str(path)!r}: {exc}") from exc
    try:
        with Image.open(path) as image:
            total = 0
            n = 0
            for frame in ImageSequence.Iterator(image):
                frame.load()
                total += int(frame.info.get("duration") or 0)
                n += 1
            return n, total
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read {str(path)!r}: {exc}") from exc


def _check_count(path: Path, kind: str, expect: int, fps: float, name: Path) -> None:
    stored, total = count_frames(path, kind)
    if kind == "mp4":
        ok = stored == expect
    else:  # merged frames: compare the running time, within the 10 ms steps of each stored frame
        per = max(1, round(1000 / fps))
        ok = 1 <= stored <= expect and total is not None and abs(total - expect * per) <= 10 * stored + 10
    if not ok:
        raise EncoderError(f"the encoded {str(name)!r} does not hold the {expect} frames given "
                           f"({stored} stored{'' if total is None else f', {total} ms'})")


def read_frames(path: Path | str) -> list[np.ndarray]:
    """All frames of an .mp4, .gif, .webp or frames folder, as uint8 (H, W, 3) RGB arrays."""
    path = Path(path)
    kind = output_kind(path)
    if kind == "frames":
        store = FrameStore(path)
        return [store.read(i) for i in range(store.count())]
    if kind == "mp4":
        return _read_mp4(path)
    try:
        with Image.open(path) as image:
            return [np.asarray(f.convert("RGB")).copy() for f in ImageSequence.Iterator(image)]
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read {str(path)!r}: {exc}") from exc


def _read_mp4(path: Path) -> list[np.ndarray]:
    try:
        import av
    except ImportError as exc:
        raise EncoderError("reading MP4 needs PyAV: pip install av") from exc
    try:
        with av.open(str(path)) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (OSError, av.FFmpegError) as exc:
        raise ImageError(f"cannot read {str(path)!r}: {exc}") from exc
