"""Images in and out: the only place Pillow meets tensors.

Tensors here are float32, RGB, values in [0, 1], shaped (B, 3, H, W). Sizes are
(height, width) everywhere except in Pillow calls, which take (width, height).
Pure functions: nothing prints; only `save_image` writes, and it writes atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, PngImagePlugin

from dreamer.errors import ImageError, OutputError, OutputExistsError, UsageError

from .atomic import atomic_write, check_name

__all__ = [
    "DEFAULT_MAX_PIXELS", "MAX_NOISE_SIDE", "OUTPUT_FORMATS", "check_image", "is_pil", "load_image", "from_pil", "to_pil",
    "to_uint8", "resize", "parse_noise_source", "make_noise", "scaled_size", "check_pixels", "load_source", "default_output_path",
    "check_output_path", "save_image", "read_metadata",
]

#: Largest image `load_image` decodes unless told otherwise (about 10k x 10k).
DEFAULT_MAX_PIXELS = 100_000_000
#: Largest side of a `noise:WxH` source.
MAX_NOISE_SIDE = 16384
#: Output extension (lower case) -> Pillow format name.
OUTPUT_FORMATS: Mapping[str, str] = MappingProxyType(
    {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
)
_SAVE_OPTIONS: Mapping[str, Mapping[str, object]] = MappingProxyType(
    {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}
)
_PathLike = str | os.PathLike[str]
_EXIF_IMAGE_DESCRIPTION = 0x010E
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_NOISE_RE = re.compile(r"(\d+)[xX](\d+)")
# Pillow's decompression-bomb limit is a module global: it is swapped for ours while we decode.
_PILLOW_LIMIT_LOCK = threading.Lock()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _too_large(path: Path, count: str, limit: int) -> ImageError:
    return ImageError(
        f"{path} has {count}, more than the limit of {limit} pixels; "
        "pass --max-pixels N (or max_pixels= in Python) to raise it"
    )


@contextlib.contextmanager
def _open(path: _PathLike, max_pixels: int) -> Iterator[Image.Image]:
    """Open `path` lazily (header only), refusing missing, empty, non-image and too-large files."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not an image")
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"{path} is empty (0 bytes)")
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Pillow's check is off while reading the header: ours follows, naming the dimensions.
        saved_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            try:
                img = Image.open(path)
            except Image.UnidentifiedImageError:
                raise ImageError(f"{path} is not an image Pillow can read") from None
            except PermissionError:
                raise ImageError(f"cannot read {path}: permission denied") from None
            except (OSError, SyntaxError, ValueError, EOFError) as e:
                raise ImageError(f"{path} is truncated or corrupt: {_one_line(e)}") from None
            with img:
                width, height = img.size
                if width * height > max_pixels:
                    raise _too_large(path, f"{width}x{height} = {width * height} pixels", max_pixels)
                Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's own checks while decoding frames
                yield img
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_image(path: _PathLike, *, max_pixels: int | None = None) -> tuple[int, int]:
    """(height, width) of an image file from its header alone, with the same checks and errors
    as `load_image` except truncation (found only by decoding). Cheap: use it to fail early."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    with _open(path, limit) as img:
        width, height = img.size
    return height, width


def load_image(path: _PathLike, *, size: int | None = None, max_pixels: int | None = None) -> torch.Tensor:
    """Read an image file as a (1, 3, H, W) float32 RGB tensor in [0, 1] on the CPU.

    Reads anything Pillow reads (the first frame of animations), turned upright by its
    EXIF orientation. Transparent areas are flattened onto mid-grey (0.5); the result has
    no alpha. 16-bit images keep their precision (65535 -> 1.0): grayscale through Pillow,
    16-bit colour PNGs and TIFFs (RGB, RGBA, grey + alpha; Pillow reads those as 8-bit) through
    PyAV. 32-bit integer and float images are scaled as described in `from_pil`.

    `size`: scale so the longest side is `size` pixels (up or down, bicubic, antialiased).
    `max_pixels`: refuse images with more pixels (default `DEFAULT_MAX_PIXELS`), checked
    from the header before any pixel is decoded.

    Raises `UsageError` for a missing file or a directory, and `ImageError` for an empty,
    unreadable, truncated, corrupt or too large file.
    """
    if size is not None and not _is_positive_int(size):
        raise UsageError(f"invalid size: {size!r} (a whole number of pixels, at least 1)")
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if not _is_positive_int(limit):
        raise UsageError(f"invalid max_pixels: {max_pixels!r} (a whole number, at least 1)")
    path = Path(path)
    with _open(path, limit) as img:
        try:
            deep = _read_16_bit_colour(img, path)
            if deep is not None:
                tensor = _oriented(deep, img)
            else:
                img.load()  # a full decode, so truncation shows up here and not later
                tensor = from_pil(ImageOps.exif_transpose(img))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            found = re.search(r"\((\d+) pixels\)", str(e))
            count = f"{found.group(1)} pixels" if found else "too many pixels"
            raise _too_large(path, count, limit) from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageError(f"{path} is truncated or corrupt: {_one_line(e)}") from None
    if size is not None:
        height, width = tensor.shape[-2:]
        scale = size / max(height, width)
        tensor = resize(tensor, (max(1, round(height * scale)), max(1, round(width * scale))))
    return tensor


# Pillow has no 16-bit colour modes: it opens 16-bit RGB/RGBA/grey+alpha PNGs and TIFFs as 8-bit.
# Those are decoded with PyAV (FFmpeg's PNG/TIFF decoders) instead, keeping every bit.
_DEEP_RAWMODE = re.compile(r"(RGB|RGBA|LA);16[BLN]?")
_DEEP_FORMATS = {"rgb48be": (3, ">u2"), "rgb48le": (3, "<u2"), "rgba64be": (4, ">u2"), "rgba64le": (4, "<u2"),
                 "ya16be": (2, ">u2"), "ya16le": (2, "<u2")}


def _rawmode(img: Image.Image) -> str:
    if not getattr(img, "tile", None):
        return ""
    args = img.tile[0][3] if len(img.tile[0]) > 3 else None
    return args[0] if isinstance(args, tuple) and args else args if isinstance(args, str) else ""


def _read_16_bit_colour(img: Image.Image, path: Path) -> torch.Tensor | None:
    """A 16-bit-per-channel colour image (RGB, RGBA, grey + alpha) as (1, 3, H, W) float32 in
    [0, 1] (v / 65535, alpha composited over mid-grey, an RGB colour key made grey), or None
    for anything Pillow reads at full precision itself."""
    if img.format not in ("PNG", "TIFF") or not _DEEP_RAWMODE.fullmatch(_rawmode(img)):
        return None
    try:
        import av
    except ImportError:  # without PyAV, Pillow's 8 bits
        return None
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (OSError, StopIteration, av.FFmpegError) as exc:
        raise ImageError(f"{path} is truncated or corrupt: {_one_line(exc)}") from None
    layout = _DEEP_FORMATS.get(frame.format.name)
    width, height = img.size
    if layout is None or (frame.width, frame.height) != (width, height):
        return None  # an unexpected decoding: fall back to Pillow
    channels, dtype = layout
    plane = frame.planes[0]
    rows = np.frombuffer(bytes(plane), dtype=dtype).reshape(height, plane.line_size // 2)
    raw = rows[:, : width * channels].reshape(height, width, channels)
    values = raw.astype(np.float32) / 65535.0
    if channels == 2:
        values = np.concatenate([np.repeat(values[:, :, :1], 3, axis=2), values[:, :, 1:]], axis=2)
    if values.shape[2] == 4:
        alpha = values[:, :, 3:]
        rgb = values[:, :, :3] * alpha + 0.5 * (1.0 - alpha)
    else:
        rgb = values
        key = img.info.get("transparency")
        if isinstance(key, tuple) and len(key) == 3:  # a tRNS colour key, in 16-bit values
            rgb = np.where((raw == np.asarray(key, dtype=raw.dtype)).all(axis=2, keepdims=True), np.float32(0.5), rgb)
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def _oriented(tensor: torch.Tensor, img: Image.Image) -> torch.Tensor:
    """`tensor` (1, 3, H, W) turned upright by the image's EXIF orientation (as exif_transpose)."""
    orientation = img.getexif().get(0x0112, 1)
    hw = (-2, -1)
    ops = {
        2: lambda t: t.flip(-1),
        3: lambda t: t.rot90(2, hw),
        4: lambda t: t.flip(-2),
        5: lambda t: t.transpose(-2, -1),
        6: lambda t: t.rot90(-1, hw),
        7: lambda t: t.rot90(1, hw).flip(-1),
        8: lambda t: t.rot90(1, hw),
    }
    op = ops.get(orientation)
    return op(tensor).contiguous() if op else tensor


def _scale_high_bit(img: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1] from a 16-bit, 32-bit integer or float grayscale image."""
    raw = np.asarray(img)
    # float32 is exact for 16-bit data and keeps memory at 4 bytes a pixel
    values = np.nan_to_num(raw.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = values.min(), values.max()
    if img.mode.startswith("I;16") or (img.mode == "I" and low >= 0 and high <= 65535):
        values /= 65535.0  # 16-bit data; some TIFFs and older Pillows deliver it as mode "I"
    elif not (img.mode == "F" and low >= 0 and high <= 1) and high > low:
        values = (values - low) / (high - low)  # other ranges are stretched to fill [0, 1]
    gray = np.clip(values, 0.0, 1.0).astype(np.float32)
    key = img.info.get("transparency")
    if isinstance(key, int):  # a tRNS colour key
        gray = np.where(raw == key, np.float32(0.5), gray)
    return gray


def from_pil(img: Image.Image) -> torch.Tensor:
    """A Pillow image of any mode as a (1, 3, H, W) float32 RGB tensor in [0, 1] on the CPU.

    Alpha (RGBA, LA, PA, palette or colour-key transparency) is composited over mid-grey
    (0.5). 16-bit images are divided by 65535; mode "I" is too when its values fit 16 bits
    and is otherwise stretched min..max to [0, 1]; mode "F" is kept when already in [0, 1]
    and otherwise stretched the same way.
    """
    if img.mode in _HIGH_BIT_MODES:
        rgb = np.repeat(_scale_high_bit(img)[:, :, None], 3, axis=2)
    elif img.has_transparency_data:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[:, :, 3:]
        rgb = rgba[:, :, :3] * alpha + 0.5 * (1.0 - alpha)
    else:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """A (3, H, W) or (1, 3, H, W) tensor in [0, 1] on any device as an (H, W, 3) uint8 array.

    Values are clamped to [0, 1] (NaN -> 0) and rounded: `(x * 255).round()`.
    """
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) or (1, 3, H, W) tensor, got shape {tuple(tensor.shape)}")
    x = torch.nan_to_num(tensor.detach().float(), nan=0.0).clamp(0.0, 1.0)
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def is_pil(obj: object) -> bool:
    """Whether `obj` is a Pillow image (so callers need not import Pillow)."""
    return isinstance(obj, Image.Image)


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """A (3, H, W) or (1, 3, H, W) tensor in [0, 1] on any device as an RGB Pillow image."""
    return Image.fromarray(to_uint8(tensor))


def resize(tensor: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Resize a (B, 3, H, W) float tensor to `size_hw` = (height, width), bicubic, clamped to [0, 1].

    Antialiased when either side shrinks. Stays on the tensor's device.
    """
    height, width = size_hw
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size_hw}")
    shrinking = height < tensor.shape[-2] or width < tensor.shape[-1]
    out = F.interpolate(tensor, (height, width), mode="bicubic", align_corners=False, antialias=shrinking)
    return out.clamp(0.0, 1.0)


def parse_noise_source(text: str) -> tuple[int, int] | None:
    """(height, width) for a source written `noise:WIDTHxHEIGHT`; None if `text` is not a noise source."""
    if not text.startswith("noise:"):
        return None
    allowed = f"expected noise:WIDTHxHEIGHT, e.g. noise:512x512, each side 1 to {MAX_NOISE_SIDE}"
    found = _NOISE_RE.fullmatch(text[len("noise:") :])
    if not found:
        raise UsageError(f"invalid noise source {text!r} ({allowed})")
    width, height = int(found.group(1)), int(found.group(2))
    if not (1 <= width <= MAX_NOISE_SIDE and 1 <= height <= MAX_NOISE_SIDE):
        raise UsageError(f"invalid noise source {text!r} ({allowed})")
    return height, width


def make_noise(size_hw: tuple[int, int], *, seed: int, batch: int = 1, amplitude: float = 0.1) -> torch.Tensor:
    """(batch, 3, H, W) float32 on the CPU: mid-grey 0.5 plus uniform noise in ±`amplitude`.

    Clamped to [0, 1]. The same `seed` always gives the same tensor.
    """
    height, width = size_hw
    if height < 1 or width < 1 or batch < 1 or amplitude < 0:
        raise ValueError(f"bad noise request: size {size_hw}, batch {batch}, amplitude {amplitude}")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand((batch, 3, height, width), generator=generator, dtype=torch.float32)
    return (0.5 + amplitude * (2.0 * noise - 1.0)).clamp(0.0, 1.0)


def scaled_size(size_hw: tuple[int, int], size: int | None) -> tuple[int, int]:
    """(height, width) after scaling the longest side to `size` pixels (unchanged when None)."""
    if size is None:
        return size_hw
    h, w = size_hw
    f = size / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def check_pixels(text: str, size_hw: tuple[int, int], *, size: int | None = None,
                 max_pixels: int | None = None) -> None:
    """Refuse (UsageError) a picture dreamer is asked to make — noise, or an image after
    `size` — with more than `max_pixels` pixels (default `DEFAULT_MAX_PIXELS`)."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    h, w = size_hw
    if h * w <= limit:
        return
    how = f"--size {size} would make {text} {w}x{h}" if size is not None else f"{text} is {w}x{h}"
    raise UsageError(
        f"{how} = {h * w} pixels, more than the --max-pixels limit of {limit}",
        hint="pass a smaller --size (or noise size), or --max-pixels N to raise the limit",
    )


def load_source(
    text: _PathLike, *, size: int | None = None, seed: int = 0, max_pixels: int | None = None,
    noise_amplitude: float = 0.1,
) -> tuple[torch.Tensor, Path | None]:
    """A source as (tensor, file): an image file, or ``noise:WIDTHxHEIGHT`` (seeded grey noise,
    ± `noise_amplitude`; file None). The tensor is (1, 3, H, W) float32 in [0, 1] on the CPU,
    its longest side scaled to `size` if given. Files and noise alike are held to
    `max_pixels` (files from their header, before decoding; noise before it is made)."""
    hw = parse_noise_source(os.fspath(text))
    if hw is not None:
        hw = scaled_size(hw, size)
        check_pixels(os.fspath(text), hw, size=size, max_pixels=max_pixels)
        return make_noise(hw, seed=seed, amplitude=noise_amplitude), None
    path = Path(text).expanduser()
    image = load_image(path, max_pixels=max_pixels)
    if size is not None:
        hw = scaled_size(tuple(image.shape[-2:]), size)
        check_pixels(str(text), hw, size=size, max_pixels=max_pixels)
        image = resize(image, hw)
    return image, path


def default_output_path(input_path: _PathLike, suffix: str = ".dream", ext: str = ".png") -> Path:
    """The output beside the input: `photo.jpg` -> `photo.dream.png`."""
    path = Path(input_path)
    return path.with_name(f"{path.stem}{suffix}{ext}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        try:
            return a.resolve() == b.resolve()
        except (OSError, RuntimeError):  # a link loop
            return os.path.abspath(a) == os.path.abspath(b)


def check_output_path(path: _PathLike, *, force: bool, inputs: Iterable[_PathLike] = ()) -> Path:
    """Check that `path` can be written, before any work is done; return it as a Path.

    Raises `UsageError` for an extension not in `OUTPUT_FORMATS`, `OutputExistsError` when it
    is one of `inputs` or exists and not `force`, and `OutputError` when it is a directory or
    its directory is missing or not writable.
    """
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        what = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise UsageError(f"cannot write {path}: {what}; use one of {', '.join(OUTPUT_FORMATS)}")
    check_name(path)
    for source in inputs:
        if _same_file(path, Path(source)):
            raise OutputExistsError(f"{path} would overwrite the input", hint="choose another output path")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    if os.path.lexists(path) and not force:  # a link counts, even one leading nowhere
        raise OutputExistsError(f"{path} already exists", hint="pass --force to overwrite")
    parent = path.absolute().parent
    if not parent.exists():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
    return path


def save_image(
    tensor: torch.Tensor, path: _PathLike, *, metadata: Mapping[str, str] | None = None,
    force: bool = False, inputs: Iterable[_PathLike] = (),
) -> Path:
    """Write a (3, H, W) or (1, 3, H, W) tensor in [0, 1] (any device) to `path`; return the path.

    The format follows the extension (`OUTPUT_FORMATS`). PNG stores each `metadata` item as
    a text chunk (see `read_metadata`); JPEG, WebP and TIFF store them as JSON in the EXIF
    ImageDescription. The file is written to a hidden temporary file beside `path` and
    renamed over it, so a failure leaves nothing half-written. Checks as `check_output_path`.
    """
    path = check_output_path(path, force=force, inputs=inputs)
    image = to_pil(tensor)
    fmt = OUTPUT_FORMATS[path.suffix.lower()]
    options = dict(_SAVE_OPTIONS.get(fmt, {}))
    items = {str(k): str(v) for k, v in (metadata or {}).items()}
    if items and fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        for key, value in items.items():
            info.add_itxt(key, value)
        options["pnginfo"] = info
    elif items:
        exif = Image.Exif()
        exif[_EXIF_IMAGE_DESCRIPTION] = json.dumps(items)  # ASCII-only, as EXIF wants
        options["exif"] = exif.tobytes()
    with atomic_write(path) as file:
        image.save(file, format=fmt, **options)
    return path


def read_metadata(path: _PathLike) -> dict[str, Any]:
    """How an output was made, as a dict: dreamer's record parsed (``model``, ``weights``,
    ``seed``, ``preset``, ``octaves_used``, ``config`` as a dict ...) beside any other text
    metadata (``Software``). From PNG text chunks, or the EXIF JSON of other formats; {} for
    an image without any."""
    from .metadata import merge_record

    with _open(path, DEFAULT_MAX_PIXELS) as img:
        if img.format == "PNG":
            return merge_record({str(k): str(v) for k, v in img.text.items()})
        description = img.getexif().get(_EXIF_IMAGE_DESCRIPTION)
    try:
        data = json.loads(description) if isinstance(description, str) else None
    except ValueError:
        return {}
    return merge_record({str(k): str(v) for k, v in data.items()}) if isinstance(data, dict) else {}
