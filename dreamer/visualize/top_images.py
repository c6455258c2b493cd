"""Top images: which of the user's images (and which patch of each) excite one channel most.

A folder is scanned once per layer: each image is scaled so its longer side is `size`
pixels, placed at the top-left of a `size` x `size` mid-grey square (so any mix of shapes
batches together), and run through the network. For every channel the peak activation over
the positions that look at the image itself (not the grey margin) and where it occurred are
kept. Those numbers are all later questions need, so they are cached on disk, keyed by model,
weights, layer and size, with each file's modification time and size: asking about another
channel of the same layer, or rescanning a folder after adding a few images, runs the network
only on what is new. The cache is written as the scan goes, so an interrupted scan resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DreamerError, ImageError, UsageError
from .grid import draw_box, fit, make_grid
from .layers import feature_maps, resolve_unit, slug

__all__ = [
    "IMAGE_EXTENSIONS",
    "CACHE_VERSION",
    "list_images",
    "made_by_dreamer",
    "default_cache_dir",
    "cache_file_for",
    "ScanResult",
    "TopHit",
    "scan_images",
    "top_units",
    "unit_box",
    "crop",
    "top_images_sheet",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CACHE_VERSION = 1
_FILL = 0.5


def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Image files (by extension, hidden files skipped) in `folder`, sorted by path.

    A missing folder, or a file given as the folder, is a UsageError; a folder without images
    an ImageError.
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise UsageError(f"no such folder: {folder}")
    if not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder", hint="top-images scans a folder of images")
    walk = folder.rglob("*") if recursive else folder.iterdir()
    found = sorted(
        p for p in walk
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts[:-1])
    )
    if not found:
        raise ImageError(
            f"no images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})",
            hint=None if recursive else "pass --recursive to look in subfolders too",
        )
    return found


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT_CHUNKS = (b"tEXt", b"iTXt", b"zTXt")


def _png_keywords(path: Path, limit: int = 64) -> set[bytes]:
    """Keywords of the text chunks a PNG holds before its image data (where dreamer writes its
    record), read from the chunk headers without decoding the picture."""
    import struct

    keywords: set[bytes] = set()
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return keywords
        for _ in range(limit):
            head = f.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):
                break
            if kind in _PNG_TEXT_CHUNKS:
                keywords.add(f.read(min(length, 80)).split(b"\0", 1)[0])
                f.seek(length - min(length, 80) + 4, 1)
            else:
                f.seek(length + 4, 1)
    return keywords


def made_by_dreamer(path: str | os.PathLike) -> bool:
    """True for a picture dreamer wrote: its metadata holds dreamer's record (a PNG text chunk,
    or the EXIF description of the other formats), whatever the file is called."""
    from ..io.metadata import METADATA_KEY

    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            return METADATA_KEY.encode() in _png_keywords(path)
        from ..io.images import read_metadata

        return "dreamer_version" in read_metadata(path)  # dreamer's record, parsed
    except (OSError, DreamerError, ValueError, SyntaxError):
        return False  # unreadable: the scan reports it


def default_cache_dir() -> Path:
    """Where activation caches live: $DREAMER_CACHE, else $XDG_CACHE_HOME/dreamer, else
    ~/.cache/dreamer; plus ``activations``."""
    root = os.environ.get("DREAMER_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "dreamer"
    return base / "activations"


def _weights_id(network) -> str:
    """A text that changes whenever the network's weights may have changed."""
    text = str(network.weights)
    path = Path(text)
    if network.spec is not None and path.is_file():
        st = path.stat()
        return f"{path.resolve()}@{st.st_mtime_ns}:{st.st_size}"
    if network.spec is None:
        # a user's own module: nothing names its weights, so hash them
        digest = hashlib.sha1()
        for name, tensor in network.module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return "sha1:" + digest.hexdigest()
    return text


def _cache_meta(network, node: str, size: int) -> dict:
    return {"version": CACHE_VERSION, "model": network.name, "weights": _weights_id(network), "node": node, "size": size}


def cache_file_for(cache_dir: str | os.PathLike, network, layer: str, size: int, folder: str | os.PathLike) -> Path:
    """The cache file for one folder, model, weights, layer and scan size, inside `cache_dir`."""
    info, _ = resolve_unit(network, layer, channel="optional")
    meta = _cache_meta(network, info.node, size)
    key = json.dumps([meta, str(Path(folder).expanduser().resolve())], sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{slug(network.name)}-{slug(info.name)}-{size}-{digest}.npz"


@dataclass
class ScanResult:
    """Per image and channel, the peak activation of a layer and where it was.

    - `paths`: the images scanned successfully, in the order given;
    - `peak`: (N, C) float32, the largest activation of each channel over the image;
    - `argmax`: (N, C) int64, its position as a flat index into the (fh, fw) feature map;
    - `scaled_hw`: (N, 2) int64, each image's (h, w) after scaling (inside the size x size square);
    - `original_hw`: (N, 2) int64, each image's (h, w) as stored in its file;
    - `computed` / `reused`: images run through the network now / taken from the cache;
    - `failed`: (path, reason) of images that could not be read (left out);
    - `cache_error`: why the cache could not be written (None if it was, or no cache).
    """

    layer: str
    node: str
    size: int
    feature_hw: tuple[int, int]
    paths: list[Path]
    peak: torch.Tensor
    argmax: torch.Tensor
    scaled_hw: torch.Tensor
    original_hw: torch.Tensor
    receptive_field: int | None
    computed: int = 0
    reused: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    cache_error: str | None = None


@dataclass(frozen=True)
class TopHit:
    """One of the top images of a channel: its rank (1 = best), path, peak activation, the
    feature-map position (row, col) of the peak, and the receptive field of that position as
    (top, left, bottom, right) in the original image's pixels."""

    rank: int
    path: Path
    value: float
    position: tuple[int, int]
    box: tuple[float, float, float, float]


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


class _Cache:
    """Rows of a scan keyed by path, with each file's (mtime_ns, size) when it was scanned."""

    def __init__(self, file: Path | None, meta: dict) -> None:
        self.file = file
        self.meta = meta
        self.rows: dict[str, tuple[int, int, np.ndarray, np.ndarray, tuple[int, ...]]] = {}
        self.feature_hw: tuple[int, int] | None = None
        if file is not None and file.is_file():
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.file, allow_pickle=False) as data:
                if json.loads(str(data["meta"])) != self.meta:
                    return
                feature_hw = tuple(int(v) for v in data["feature_hw"])
                paths, stamps = data["paths"], data["stamps"]
                peak, argmax, hw = data["peak"], data["argmax"], data["sizes"]
                for i, p in enumerate(paths.tolist()):
                    self.rows[p] = (int(stamps[i, 0]), int(stamps[i, 1]), peak[i], argmax[i], tuple(int(v) for v in hw[i]))
                self.feature_hw = feature_hw  # type: ignore[assignment]
        except (OSError, ValueError, KeyError, json.JSONDecodeError, IndexError):
            self.rows = {}  # unreadable or from another version: start again

    def get(self, path: Path, stamp: tuple[int, int]):
        row = self.rows.get(str(path.resolve()))
        if row is None or (row[0], row[1]) != stamp:
            return None
        return row

    def put(self, path: Path, stamp: tuple[int, int], peak: np.ndarray, argmax: np.ndarray, hw: tuple[int, ...]) -> None:
        self.rows[str(path.resolve())] = (stamp[0], stamp[1], peak, argmax, hw)

    def save(self) -> None:
        if self.file is None or not self.rows or self.feature_hw is None:
            return
        keep = {p: r for p, r in self.rows.items() if os.path.exists(p)}
        names = list(keep)
        arrays = {
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
            "feature_hw": np.array(self.feature_hw, dtype=np.int64),
            "paths": np.array(names, dtype=str),
            "stamps": np.array([[keep[p][0], keep[p][1]] for p in names], dtype=np.int64).reshape(-1, 2),
            "peak": np.stack([keep[p][2] for p in names]).astype(np.float32),
            "argmax": np.stack([keep[p][3] for p in names]).astype(np.int64),
            "sizes": np.array([keep[p][4] for p in names], dtype=np.int64).reshape(-1, 4),
        }
        self.file.parent.mkdir(parents=True, exist_ok=True)
        from ..io.atomic import atomic_write

        with atomic_write(self.file) as fh:  # OutputError (naming the reason) when it cannot
            np.savez(fh, **arrays)


def _scale(image: torch.Tensor, size: int) -> torch.Tensor:
    from ..io.images import resize

    h, w = image.shape[-2:]
    f = size / max(h, w)
    hw = (max(1, round(h * f)), max(1, round(w * f)))
    return image if hw == (h, w) else resize(image, hw)


def _letterbox(image: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.full((1, 3, size, size), _FILL)
    h, w = image.shape[-2:]
    out[:, :, :h, :w] = image
    return out


def _valid_mask(feature_hw: tuple[int, int], size: int, hw: torch.Tensor, device) -> torch.Tensor:
    """(B, fh*fw) bool: positions whose centre falls on the image rather than the grey margin."""
    fh, fw = feature_hw
    cy = (torch.arange(fh, device=device) + 0.5) * size / fh
    cx = (torch.arange(fw, device=device) + 0.5) * size / fw
    hw = hw.to(device)
    inside_y = cy.view(1, fh, 1) < hw[:, 0].view(-1, 1, 1)
    inside_x = cx.view(1, 1, fw) < hw[:, 1].view(-1, 1, 1)
    mask = (inside_y & inside_x).flatten(1)
    # a tiny image may cover no centre at all: then it is judged by its top-left position
    mask[:, 0] |= ~mask.any(1)
    return mask


def scan_images(
    network,
    paths: Sequence[str | os.PathLike],
    layer: str,
    *,
    size: int = 224,
    batch_size: int = 16,
    cache_file: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    save_every: int = 8,
    max_pixels: int | None = None,
) -> ScanResult:
    """Peak activations of every channel of `layer` for each image in `paths`.

    Images are scaled to `size` pixels on their longer side (see the module notes) and run
    `batch_size` at a time on the network's device. With `cache_file`, rows of unchanged files
    are read from it and new rows written to it (every `save_every` batches and at the end,
    atomically). Unreadable images are skipped and listed in `failed`. `progress(done, total)`
    counts the images that need the network. Images over `max_pixels` (default the loader's
    100 million) are skipped like unreadable ones.
    """
    from ..io.images import load_image

    if size < network.min_size:
        raise UsageError(f"invalid size {size}: the network needs at least {network.min_size} pixels")
    if batch_size < 1:
        raise UsageError(f"invalid batch size {batch_size}: at least 1")
    info, _ = resolve_unit(network, layer, channel="optional", spatial=True, what="top-images")
    node = info.node
    cache = _Cache(Path(cache_file) if cache_file is not None else None, _cache_meta(network, node, size))
    paths = [Path(p) for p in paths]
    failed: list[tuple[Path, str]] = []
    todo: list[tuple[Path, tuple[int, int]]] = []
    stamps: dict[Path, tuple[int, int]] = {}
    for p in paths:
        try:
            stamps[p] = _stamp(p)
        except OSError as exc:
            failed.append((p, f"cannot read: {exc.strerror or exc}"))
            continue
        if cache.get(p, stamps[p]) is None:
            todo.append((p, stamps[p]))
    reused = len(stamps) - len(todo)
    extractor = network.extractor([node]) if todo else None
    cache_error = None
    done = 0
    batches = 0
    computed = 0

    def save() -> None:
        nonlocal cache_error
        try:
            cache.save()
        except (OSError, DreamerError) as exc:
            reason = exc.message if isinstance(exc, DreamerError) else exc.strerror or exc
            cache_error = f"cannot write the activation cache {cache.file}: {reason}"

    try:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            images, kept, sizes = [], [], []
            for p, stamp in chunk:
                try:
                    img = load_image(p, max_pixels=max_pixels)
                except DreamerError as exc:
                    failed.append((p, str(exc).splitlines()[0]))
                    continue
                scaled = _scale(img, size)
                images.append(_letterbox(scaled, size))
                kept.append((p, stamp))
                sizes.append((*scaled.shape[-2:], *img.shape[-2:]))
            if images:
                maps = feature_maps(network, torch.cat(images), node, extractor)
                if maps.dim() != 4:
                    raise UsageError(f"{info.name} has no spatial maps, so top-images cannot show it")
                feature_hw = (int(maps.shape[-2]), int(maps.shape[-1]))
                if cache.feature_hw is not None and cache.feature_hw != feature_hw:
                    cache.rows = {}  # should not happen for one size; never mix grids
                cache.feature_hw = feature_hw
                hw = torch.tensor([s[:2] for s in sizes], dtype=torch.int64)
                computed += len(kept)
                valid = _valid_mask(feature_hw, size, hw, maps.device)
                flat = maps.float().flatten(2)  # (B, C, fh*fw)
                flat = flat.masked_fill(~valid.unsqueeze(1), float("-inf"))
                peak, argmax = flat.max(dim=2)
                peak, argmax = peak.cpu().numpy(), argmax.cpu().numpy()
                for i, (p, stamp) in enumerate(kept):
                    cache.put(p, stamp, peak[i], argmax[i], sizes[i])
            done += len(chunk)
            batches += 1
            if progress is not None:
                progress(done, len(todo))
            if save_every and batches % save_every == 0:
                save()
    finally:
        if todo:
            save()

    failed_set = {p for p, _ in failed}
    ok = [p for p in paths if p not in failed_set]
    rows = [cache.get(p, stamps[p]) for p in ok]
    if not ok:
        raise ImageError("none of the images could be read", hint=failed[0][1] if failed else None)
    feature_hw = cache.feature_hw or (0, 0)
    return ScanResult(
        layer=info.name,
        node=node,
        size=size,
        feature_hw=feature_hw,  # type: ignore[arg-type]
        paths=ok,
        peak=torch.from_numpy(np.stack([r[2] for r in rows]).astype(np.float32)),
        argmax=torch.from_numpy(np.stack([r[3] for r in rows]).astype(np.int64)),
        scaled_hw=torch.tensor([r[4][:2] for r in rows], dtype=torch.int64),
        original_hw=torch.tensor([r[4][2:] for r in rows], dtype=torch.int64),
        receptive_field=info.receptive_field,
        computed=computed,
        reused=reused,
        failed=failed,
        cache_error=cache_error,
    )


def unit_box(
    position: tuple[int, int],
    feature_hw: tuple[int, int],
    size: int,
    receptive_field: int | None,
    scale: float = 1.0,
) -> tuple[float, float, float, float]:
    """The receptive field of feature-map `position` (row, col) as (top, left, bottom, right).

    Coordinates are pixels of the `size` x `size` scan input, multiplied by `scale` (to reach
    the original image). The field is centred on the position's centre; its side is
    `receptive_field` pixels, or four times the stride when that is unknown.
    """
    fh, fw = feature_hw
    sy, sx = size / fh, size / fw
    side = float(receptive_field) if receptive_field else 4.0 * max(sy, sx)
    cy, cx = (position[0] + 0.5) * sy, (position[1] + 0.5) * sx
    half = side / 2
    return ((cy - half) * scale, (cx - half) * scale, (cy + half) * scale, (cx + half) * scale)


def top_units(scan: ScanResult, channel: int, k: int = 9) -> list[TopHit]:
    """The `k` images whose peak activation of `channel` is highest, best first (ties keep the
    scan's order), with the receptive field of each peak in original-image pixels."""
    channels = scan.peak.shape[1]
    if not 0 <= channel < channels:
        from ..errors import ConfigError

        raise ConfigError("channel", channel, f"{scan.layer} has channels 0-{channels - 1}")
    values = scan.peak[:, channel]
    order = torch.sort(values, descending=True, stable=True).indices[: max(1, k)]
    fh, fw = scan.feature_hw
    hits = []
    for rank, i in enumerate(order.tolist(), 1):
        flat = int(scan.argmax[i, channel])
        pos = divmod(flat, fw)
        scale = float(scan.original_hw[i].max()) / float(scan.scaled_hw[i].max())
        box = unit_box(pos, (fh, fw), scan.size, scan.receptive_field, scale)
        hits.append(TopHit(rank, scan.paths[i], float(values[i]), pos, box))
    return hits


def crop(image: torch.Tensor, box: tuple[float, float, float, float], out_hw: tuple[int, int]) -> torch.Tensor:
    """The `box` (top, left, bottom, right) of a (1,3,H,W) image, grey where it leaves the
    image, resized to `out_hw`: (1,3,h,w) float32 in [0,1]."""
    h, w = image.shape[-2:]
    top, left, bottom, right = (int(round(v)) for v in box)
    bottom, right = max(bottom, top + 1), max(right, left + 1)
    pad = (max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))
    padded = F.pad(image.float(), pad, value=_FILL) if any(pad) else image.float()
    top, left = top + pad[2], left + pad[0]
    bottom, right = bottom + pad[2], right + pad[0]
    region = padded[:, :, top:bottom, left:right]
    shrink = region.shape[-2] > out_hw[0] or region.shape[-1] > out_hw[1]
    return F.interpolate(region, size=out_hw, mode="bilinear", align_corners=False, antialias=shrink).clamp(0, 1)


def top_images_sheet(
    scan: ScanResult,
    channel: int,
    *,
    top: int = 9,
    tile: int = 128,
    columns: int | None = None,
    max_pixels: int | None = None,
) -> tuple[torch.Tensor, list[TopHit]]:
    """A contact sheet of the `top` images of `channel`: for each, the whole image with the
    receptive field of its peak outlined, and below it that patch, full resolution, enlarged.
    Returns the (3,H,W) float32 CPU sheet in [0,1] and the hits shown."""
    from ..io.images import load_image

    hits = top_units(scan, channel, top)
    pairs, labels = [], []
    for hit in hits:
        image = load_image(hit.path, max_pixels=max_pixels)  # full resolution: crops stay sharp
        h, w = image.shape[-2:]
        box = hit.box
        line = max(2, round(2 * max(h, w) / tile))
        framed = draw_box(image[0], box, width=line)
        thumb = fit(framed.unsqueeze(0), (tile, tile))
        patch = crop(image, box, (tile, tile))
        gap = torch.full((1, 3, 2, tile), 0.12)
        pairs.append(torch.cat([thumb, gap, patch], dim=2))
        labels.append(f"{hit.rank}. {hit.value:.3g} {hit.path.name}")
    tiles = torch.cat(pairs)
    title = f"{scan.layer}:{channel}: top {len(hits)} of {len(scan.paths)} images (peak activation)"
    return make_grid(tiles, labels=labels, columns=columns, title=title), hits
