"""Contact sheets: tiles in a grid with labels, colour maps and small drawing helpers (torch).

Tiles are (N, 3, h, w) float tensors in [0, 1]; a sheet is a (3, H, W) float32 tensor in
[0, 1] on the CPU. Text labels come from `labels.text_mask` (the Pillow boundary).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "COLORMAPS",
    "colormap",
    "normalize",
    "fit",
    "grid_shape",
    "GridLayout",
    "grid_layout",
    "make_grid",
    "draw_box",
    "blend",
]

# anchor colours (RGB, 0-1), evenly spaced over [0, 1]; interpolated linearly between
COLORMAPS: dict[str, tuple[tuple[float, float, float], ...]] = {
    # dark to bright through purple, red, orange: for magnitudes (activations, heat)
    "heat": (
        (0.00, 0.00, 0.02), (0.20, 0.05, 0.38), (0.55, 0.10, 0.45),
        (0.88, 0.27, 0.25), (0.99, 0.62, 0.12), (0.99, 0.98, 0.72),
    ),
    # blue - white - red: for signed values, 0.5 is zero
    "diverging": (
        (0.10, 0.25, 0.65), (0.45, 0.65, 0.92), (0.97, 0.97, 0.97),
        (0.95, 0.55, 0.40), (0.70, 0.05, 0.10),
    ),
    "gray": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def colormap(values: torch.Tensor, name: str = "heat") -> torch.Tensor:
    """Colour values in [0, 1] (any shape S, clamped) as a (3, *S) float32 tensor in [0, 1]."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; choose from {', '.join(COLORMAPS)}")
    anchors = torch.tensor(COLORMAPS[name], dtype=torch.float32, device=values.device)  # (A, 3)
    v = torch.nan_to_num(values.float(), nan=0.0).clamp(0.0, 1.0) * (len(anchors) - 1)
    low = v.floor().long().clamp(max=len(anchors) - 2)
    frac = (v - low).unsqueeze(-1)
    rgb = anchors[low] * (1 - frac) + anchors[low + 1] * frac  # (*S, 3)
    return rgb.movedim(-1, 0).contiguous()


def normalize(x: torch.Tensor, *, low: float | torch.Tensor | None = None, high: float | torch.Tensor | None = None) -> torch.Tensor:
    """Scale to [0, 1]: `low` -> 0, `high` -> 1 (default the tensor's min and max). Flat input -> 0."""
    x = x.float()
    lo = x.min() if low is None else torch.as_tensor(low, dtype=torch.float32, device=x.device)
    hi = x.max() if high is None else torch.as_tensor(high, dtype=torch.float32, device=x.device)
    span = (hi - lo).clamp_min(1e-12)
    return ((x - lo) / span).clamp(0.0, 1.0)


def fit(images: torch.Tensor, size_hw: tuple[int, int], *, mode: str = "bilinear", fill: float = 0.5) -> torch.Tensor:
    """Scale (N, C, h, w) images to fit inside `size_hw` keeping their aspect ratio, centred on `fill`.

    `mode` "nearest" keeps the blocks of a coarse map visible; "bilinear" smooths.
    """
    th, tw = size_hw
    h, w = images.shape[-2:]
    scale = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    if (nh, nw) != (h, w):
        kwargs = {"align_corners": False, "antialias": scale < 1} if mode != "nearest" else {}
        images = F.interpolate(images.float(), size=(nh, nw), mode=mode, **kwargs)
    if (nh, nw) == (th, tw):
        return images.clamp(0.0, 1.0)
    out = images.new_full((images.shape[0], images.shape[1], th, tw), fill)
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[:, :, top : top + nh, left : left + nw] = images
    return out.clamp(0.0, 1.0)


def grid_shape(count: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of a grid of `count` tiles: `columns` given, or about square."""
    if count < 1:
        raise ValueError("a grid needs at least one tile")
    cols = columns if columns else math.ceil(math.sqrt(count))
    cols = max(1, min(cols, count))
    return math.ceil(count / cols), cols


@dataclass(frozen=True)
class GridLayout:
    """Where `make_grid` puts things: sheet `size` (H, W), each tile's top-left `origins`
    (row, col) in order, the height of the label strip under each tile and of the title."""

    size: tuple[int, int]
    origins: tuple[tuple[int, int], ...]
    label_height: int
    title_height: int


def grid_layout(
    count: int,
    tile_hw: tuple[int, int],
    *,
    columns: int | None = None,
    padding: int = 4,
    labelled: bool = False,
    label_height: int | None = None,
    title: bool = False,
) -> GridLayout:
    """The layout of `count` tiles of `tile_hw` (see `make_grid`)."""
    th, tw = tile_hw
    rows, cols = grid_shape(count, columns)
    strip = 0
    if labelled:
        strip = label_height if label_height is not None else max(12, min(20, round(min(th, tw) / 7)))
    title_h = max(14, min(24, round(min(th, tw) / 6))) if title else 0
    cell_h, cell_w = th + strip, tw
    height = padding + title_h + rows * (cell_h + padding)
    width = padding + cols * (cell_w + padding)
    origins = []
    for i in range(count):
        r, c = divmod(i, cols)
        origins.append((padding + title_h + r * (cell_h + padding), padding + c * (cell_w + padding)))
    return GridLayout((height, width), tuple(origins), strip, title_h)


def make_grid(
    tiles: torch.Tensor,
    *,
    labels: Sequence[str] | None = None,
    columns: int | None = None,
    padding: int = 4,
    label_height: int | None = None,
    background: float = 0.12,
    label_color: tuple[float, float, float] = (0.92, 0.92, 0.92),
    title: str | None = None,
) -> torch.Tensor:
    """Tile (N, 3, h, w) images in [0, 1] into a (3, H, W) float32 sheet on the CPU.

    Tiles are laid out row by row, `padding` pixels apart. With `labels` (one per tile) each
    tile gets a strip of `label_height` pixels (default about h/7, at least 12) below it
    with its label (default height about a seventh of the tile, 12-20 px); `title` adds a
    line above the grid.
    """
    if tiles.dim() != 4 or tiles.shape[1] != 3:
        raise ValueError(f"tiles must be (N, 3, h, w), got {tuple(tiles.shape)}")
    if labels is not None and len(labels) != tiles.shape[0]:
        raise ValueError(f"{len(labels)} labels for {tiles.shape[0]} tiles")
    from .labels import text_mask

    tiles = tiles.detach().float().cpu().clamp(0.0, 1.0)
    n, _, th, tw = tiles.shape
    layout = grid_layout(
        n, (th, tw), columns=columns, padding=padding, labelled=labels is not None,
        label_height=label_height, title=bool(title),
    )
    height, width = layout.size
    strip, title_h = layout.label_height, layout.title_height
    sheet = torch.full((3, height, width), float(background))
    ink = torch.tensor(label_color, dtype=torch.float32).view(3, 1, 1)

    def put_text(text: str, top: int, left: int, h: int, max_w: int) -> None:
        mask = torch.from_numpy(text_mask(text, h, max_width=max_w))
        mh, mw = mask.shape
        mw = min(mw, width - left)
        region = sheet[:, top : top + mh, left : left + mw]
        m = mask[:, :mw].unsqueeze(0)
        sheet[:, top : top + mh, left : left + mw] = region * (1 - m) + ink * m

    if title:
        put_text(title, padding // 2, padding, title_h, width - 2 * padding)
    for i, (top, left) in enumerate(layout.origins):
        sheet[:, top : top + th, left : left + tw] = tiles[i]
        if labels is not None and labels[i]:
            put_text(labels[i], top + th, left, strip, tw)
    return sheet


def draw_box(
    image: torch.Tensor,
    box: tuple[float, float, float, float],
    *,
    color: tuple[float, float, float] = (1.0, 0.85, 0.1),
    width: int = 2,
) -> torch.Tensor:
    """A copy of a (3, H, W) image with the outline of `box` = (top, left, bottom, right) drawn.

    The box is clipped to the image; coordinates are in pixels (bottom/right exclusive).
    """
    out = image.clone()
    h, w = out.shape[-2:]
    top, left, bottom, right = (int(round(v)) for v in box)
    top, left = max(0, min(top, h - 1)), max(0, min(left, w - 1))
    bottom, right = max(top + 1, min(bottom, h)), max(left + 1, min(right, w))
    c = torch.tensor(color, dtype=out.dtype, device=out.device).view(3, 1, 1)
    out[:, top : min(top + width, bottom), left:right] = c
    out[:, max(bottom - width, top) : bottom, left:right] = c
    out[:, top:bottom, left : min(left + width, right)] = c
    out[:, top:bottom, max(right - width, left) : right] = c
    return out


def blend(photo: torch.Tensor, overlay: torch.Tensor, alpha: float | torch.Tensor = 0.6, *, gray: bool = True) -> torch.Tensor:
    """`overlay` over `photo` (both (…, 3, H, W) in [0, 1]); the photo is greyed and dimmed first
    when `gray`, so the colours of the overlay read clearly. `alpha` may be a per-pixel tensor."""
    base = photo
    if gray:
        luma = (0.299 * photo[..., 0:1, :, :] + 0.587 * photo[..., 1:2, :, :] + 0.114 * photo[..., 2:3, :, :])
        base = (0.25 + 0.6 * luma).expand_as(photo)
    return (base * (1 - alpha) + overlay * alpha).clamp(0.0, 1.0)
