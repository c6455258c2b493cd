"""Frame stores and video files: where `dreamer zoom` puts its frames.

Every run first writes numbered PNGs into a frame store folder, one atomic
write per finished frame, so an interrupted run keeps its work and `--resume`
continues from the last frame. The final file (.mp4, .gif, .webp) is encoded
from the store, also atomically. Frames are uint8 numpy arrays (H, W, 3) RGB.
Pillow and PyAV are used only here and in `images.py`; PyAV is imported lazily,
so it is only needed for .mp4.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, PngImagePlugin

from dreamer.errors import EncoderError, ImageError, OutputError, OutputExistsError, UsageError

__all__ = [
    "VIDEO_EXTENSIONS", "FrameStore", "output_kind", "frame_store_path",
    "prepare_output", "encode", "read_frames",
]

VIDEO_EXTENSIONS = (".mp4", ".gif", ".webp")
STORE_SUFFIX = ".frames"
_FRAME_RE = re.compile(r"frame_(\d{6,})\.png")
_MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"


def output_kind(path: Path) -> str:
    """"mp4", "gif", "webp", or "frames" (a folder of PNGs: no suffix, an existing folder, or `*.frames`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in ("", STORE_SUFFIX):
        return "frames"
    if suffix in VIDEO_EXTENSIONS:
        return suffix[1:]
    raise UsageError(f"cannot write a video to {str(path)!r}: unknown extension {path.suffix!r} "
                     "(allowed: a folder, .mp4, .gif or .webp)")


def frame_store_path(output: Path) -> Path:
    """The frame store of `output`: the folder itself, or the sibling `<name>.frames`."""
    output = Path(output)
    if output_kind(output) == "frames":
        return output
    return output.with_name(output.name + STORE_SUFFIX)


def _temp_sibling(path: Path) -> Path:
    """A fresh hidden name next to `path`, same suffix (so tools still know the format)."""
    return path.with_name(f"{_TMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class FrameStore:
    """A folder of `frame_000000.png`, `frame_000001.png`, ... plus an optional `manifest.json`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"FrameStore({str(self.folder)!r})"

    def frame_path(self, index: int) -> Path:
        return self.folder / f"frame_{index:06d}.png"

    def _frame_files(self) -> dict[int, Path]:
        try:
            names = os.listdir(self.folder)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        return {int(m.group(1)): self.folder / n for n in names if (m := _FRAME_RE.fullmatch(n))}

    def count(self) -> int:
        """Number of consecutive finished frames from 0 (a gap ends the count; temp files don't count)."""
        present = self._frame_files()
        n = 0
        while n in present:
            n += 1
        return n

    def paths(self) -> list[Path]:
        """Paths of the finished frames, in order."""
        return [self.frame_path(i) for i in range(self.count())]

    def write(self, index: int, frame: np.ndarray, metadata: dict[str, str] | None = None) -> Path:
        """Write frame `index` atomically (temp file, then rename); `metadata` goes in PNG text chunks."""
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        image = Image.fromarray(_check_frame(frame), "RGB")
        info = PngImagePlugin.PngInfo()
        for key, value in (metadata or {}).items():
            info.add_text(str(key), str(value))
        final = self.frame_path(index)
        tmp = _temp_sibling(final)
        try:
            image.save(tmp, format="PNG", pnginfo=info)
            os.replace(tmp, final)
        except OSError as exc:
            _unlink(tmp)
            raise OutputError(f"cannot write frame {str(final)!r}: {exc.strerror or exc}") from exc
        return final

    def read(self, index: int) -> np.ndarray:
        """Frame `index` as uint8 (H, W, 3) RGB."""
        path = self.frame_path(index)
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB")).copy()
        except OSError as exc:
            raise ImageError(f"cannot read frame {str(path)!r}: {exc}") from exc

    def clear(self) -> None:
        """Remove the frames, leftover temp files and the manifest; then a `.frames` folder left empty."""
        if not self.folder.is_dir():
            return
        for path in self._frame_files().values():
            path.unlink()
        for path in self.folder.glob(f"{_TMP_PREFIX}*"):
            _unlink(path)
        _unlink(self.folder / _MANIFEST)
        if self.folder.name.endswith(STORE_SUFFIX) and not any(self.folder.iterdir()):
            self.folder.rmdir()

    def write_manifest(self, manifest: dict) -> None:
        """Record the run's resolved settings (JSON, atomic) so `--resume` can check them."""
        final = self.folder / _MANIFEST
        tmp = _temp_sibling(final)
        try:
            tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, final)
        except OSError as exc:
            _unlink(tmp)
            raise OutputError(f"cannot write {str(final)!r}: {exc.strerror or exc}") from exc

    def read_manifest(self) -> dict | None:
        """The recorded settings, or None when there is no manifest."""
        path = self.folder / _MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot read {str(path)!r}: {exc}", hint="use --force to start over") from exc
        if not isinstance(data, dict):
            raise OutputError(f"{str(path)!r} is not a settings manifest", hint="use --force to start over")
        return data


def prepare_output(output: Path, *, force: bool, resume: bool) -> FrameStore:
    """Check that `output` can be written before any work starts; create and return its frame store.

    With `force` (and not `resume`) old frames are cleared; an old final file stays until
    `encode` replaces it. With `resume` existing frames are kept.
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
    if not (force or resume):
        if kind != "frames" and output.exists():
            raise OutputExistsError(f"{str(output)!r} already exists",
                                    hint="use --force to overwrite it, or --resume to continue its run")
        if store._frame_files():
            raise OutputExistsError(f"{str(store.folder)!r} already holds frames of an earlier run",
                                    hint="use --resume to continue that run, or --force to start over")
    try:
        if force and not resume:
            store.clear()
        store.folder.mkdir(exist_ok=True)
        probe = _temp_sibling(store.folder / "probe")  # as root, permission bits say little: try it
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write into {str(store.folder)!r}: {exc.strerror or exc}") from exc
    return store


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
            try:
                with Image.open(item) as image:
                    item = np.asarray(image.convert("RGB"))
            except OSError as exc:
                raise ImageError(f"cannot read frame {str(item)!r}: {exc}") from exc
        array = _check_frame(item)
        if shape is None:
            shape = array.shape
        elif array.shape != shape:
            raise EncoderError(f"frames differ in size: {shape[1]}x{shape[0]} then {array.shape[1]}x{array.shape[0]}")
        yield array


def encode(frames: Iterable[np.ndarray] | list[Path], output: Path, *, fps: float,
           kind: str | None = None) -> Path:
    """Encode `frames` into `output` atomically and return `output`.

    mp4: H.264 yuv420p; odd widths/heights are padded to even by repeating the last
    column/row (never cropped). gif: 256-colour palette per frame, durations in 10 ms
    steps; Pillow merges identical consecutive frames. webp: lossy, quality 90.
    kind "frames": nothing to do, the store is the output.
    """
    output = Path(output)
    kind = kind or output_kind(output)
    if kind == "frames":
        return output
    if not fps > 0 or fps == float("inf"):
        raise UsageError(f"fps must be a positive number, got {fps!r}")
    writer = {"mp4": _write_mp4, "gif": _write_pillow, "webp": _write_pillow}.get(kind)
    if writer is None:
        raise UsageError(f"unknown video kind {kind!r} (allowed: frames, mp4, gif, webp)")
    iterator = _frames(frames)
    first = next(iterator, None)
    if first is None:
        raise EncoderError(f"no frames to encode into {str(output)!r}")
    tmp = _temp_sibling(output)
    try:
        writer(first, iterator, tmp, fps, kind)
        os.replace(tmp, output)
    except OSError as exc:
        raise OutputError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from exc
    finally:
        _unlink(tmp)
    return output


def _write_pillow(first: np.ndarray, frames: Iterator[np.ndarray], path: Path, fps: float,
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


def _write_mp4(first: np.ndarray, frames: Iterator[np.ndarray], path: Path, fps: float,
               kind: str) -> None:
    try:
        import av
    except ImportError as exc:
        raise EncoderError("writing MP4 needs PyAV: pip install av",
                           hint="or write .gif, .webp or a folder of PNG frames") from exc
    rate = Fraction(fps).limit_denominator(1001)
    codec = _video_codec(av)
    height, width = first.shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))  # yuv420p needs even sizes: repeat the edge
    try:
        with av.open(str(path), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            stream.time_base = 1 / rate
            if stream.codec_context.name == "libx264":
                stream.options = {"crf": "18"}
            else:
                stream.bit_rate = 8_000_000
            for index, frame in enumerate(itertools.chain([first], frames)):
                video_frame = av.VideoFrame.from_ndarray(np.pad(frame, pad, mode="edge"), format="rgb24")
                video_frame.pts = index
                video_frame.time_base = 1 / rate
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode(None))  # flush delayed frames
    except OSError:  # PyAV's file errors are OSErrors too: a missing folder, a full disk ...
        raise
    except av.FFmpegError as exc:
        raise EncoderError(f"{codec} failed to encode MP4: {exc}") from exc


def read_frames(path: Path) -> list[np.ndarray]:
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
