"""Image transforms on the device: jitter, resizing, random scale/rotate, zoom feedback, blur.

All take and return (B,3,H,W) float tensors and keep the device. Random ones take a
`torch.Generator` (on the CPU, so drawing numbers never waits for the device).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "draw_shifts",
    "roll",
    "resize",
    "affine",
    "STANDARD_SCALES",
    "STANDARD_ANGLES",
    "RandomScaleRotate",
    "standard_transform",
    "CROP_ANGLE",
    "CROP_FLIP",
    "CROP_NOISE",
    "CROP_PAD",
    "BACKGROUND_CELL",
    "BACKDROP_JITTER",
    "random_backgrounds",
    "backdrop_image",
    "backdrop_views",
    "RandomCrops",
    "feedback",
    "gaussian_blur",
]

#: Random scales (>1 enlarges) of the ``standard`` transforms, one drawn per image and step:
#: 0.9 ... 1.1 in steps of 0.025. Both loops use this table (the range of the feature
#: visualisation literature; small enough that a dream on a photo stays sharp).
STANDARD_SCALES = tuple(1.0 + i / 40.0 for i in range(-4, 5))
#: Random rotations (degrees) of the ``standard`` transforms, one drawn per image and step.
STANDARD_ANGLES = tuple(float(a) for a in range(-10, 11))


def draw_shifts(generators: Sequence[torch.Generator], jitter: int) -> list[tuple[int, int]]:
    """One random (dy, dx) in [-jitter, jitter] per image, from each image's own generator."""
    if jitter <= 0:
        return [(0, 0)] * len(generators)
    return [tuple(torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist()) for g in generators]  # type: ignore[misc]


def roll(x: torch.Tensor, shifts: Sequence[tuple[int, int]], *, inverse: bool = False) -> torch.Tensor:
    """Roll each image of the batch by its own (dy, dx) (cyclic shift); `inverse` rolls back."""
    sign = -1 if inverse else 1
    if len(set(shifts)) == 1:
        dy, dx = shifts[0]
        if dy == 0 and dx == 0:
            return x
        return torch.roll(x, (sign * dy, sign * dx), dims=(2, 3))
    return torch.stack([torch.roll(x[b], (sign * dy, sign * dx), dims=(1, 2)) for b, (dy, dx) in enumerate(shifts)])


def resize(x: torch.Tensor, size_hw: tuple[int, int], *, mode: str = "bilinear") -> torch.Tensor:
    """Resize to (height, width); antialiased when shrinking. No clamping (details may be signed)."""
    if tuple(x.shape[-2:]) == tuple(size_hw):
        return x
    shrink = size_hw[0] < x.shape[-2] or size_hw[1] < x.shape[-1]
    return F.interpolate(x, size=size_hw, mode=mode, align_corners=False, antialias=shrink)


def affine(
    x: torch.Tensor,
    *,
    scale: float | torch.Tensor = 1.0,
    angle_deg: float | torch.Tensor = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
    padding: str = "reflection",
) -> torch.Tensor:
    """Scale (>1 enlarges, i.e. zooms in), rotate (degrees, counter-clockwise) and shift
    (dy, dx in pixels) about the image centre, bilinear. `scale`/`angle_deg` may be (B,) tensors."""
    b, _, h, w = x.shape
    scale_t = torch.as_tensor(scale, dtype=torch.float32).expand(b)
    angle_t = torch.as_tensor(angle_deg, dtype=torch.float32).expand(b) * (math.pi / 180.0)
    cos, sin = torch.cos(angle_t) / scale_t, torch.sin(angle_t) / scale_t
    # affine_grid works in normalised coordinates; the aspect ratio keeps rotations rigid
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = -2.0 * shift[1] / w
    theta[:, 1, 2] = -2.0 * shift[0] / h
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


class RandomScaleRotate:
    """A random scale and rotation per image (from `scales`/`angles`), then a random cyclic shift
    of up to `fine_jitter` pixels, each drawn with the image's own generator (so an image in a
    batch is transformed as it would be alone).

    `draw()` picks new values (once per step); calling it applies the current ones, so a step
    that is computed again (an out-of-memory retry) sees the same transform. Differentiable.
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        *,
        scales: Sequence[float] = STANDARD_SCALES,
        angles: Sequence[float] = STANDARD_ANGLES,
        fine_jitter: int = 0,
    ) -> None:
        self.generators = list(generators)
        self.scales = tuple(scales)
        self.angles = tuple(angles)
        self.fine_jitter = fine_jitter
        self.picks: list[tuple[float, float]] | None = None
        self.shifts: list[tuple[int, int]] = [(0, 0)] * len(self.generators)

    def draw(self) -> None:
        def pick(choices: tuple[float, ...], g: torch.Generator) -> float:
            return choices[int(torch.randint(len(choices), (1,), generator=g))]

        self.picks = [(pick(self.scales, g), pick(self.angles, g)) for g in self.generators]
        self.shifts = draw_shifts(self.generators, self.fine_jitter)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.generators) != x.shape[0]:
            raise ValueError(f"{len(self.generators)} generators for a batch of {x.shape[0]}")
        if self.picks is None:
            self.draw()
        picks = self.picks
        if not all(s == 1.0 and a == 0 for s, a in picks):
            x = affine(
                x,
                scale=torch.tensor([s for s, _ in picks], dtype=torch.float32),
                angle_deg=torch.tensor([a for _, a in picks], dtype=torch.float32),
            )
        return roll(x, self.shifts)


def standard_transform(generators: Sequence[torch.Generator], jitter: int) -> RandomScaleRotate:
    """The ``standard`` transforms of both loops, applied after the loop's own jitter roll: a
    scale from `STANDARD_SCALES`, a rotation from `STANDARD_ANGLES` (about the centre, edges
    reflected), then a second shift of up to a quarter of `jitter`, so the rescaled pixel grid
    does not line up with the network's strides."""
    return RandomScaleRotate(generators, fine_jitter=jitter // 4)


# --- the ``crops`` transforms of the render loop ----------------------------------------------
#: Largest rotation (degrees, either way) of a ``crops`` view: one angle drawn uniformly per view.
CROP_ANGLE = 15.0
#: Probability that a ``crops`` view is mirrored left-right.
CROP_FLIP = 0.5
#: Standard deviation of the Gaussian pixel noise added to each ``crops`` view (RGB in [0,1]).
CROP_NOISE = 0.02
#: How far (fraction of the canvas side) the centre of a crop of an RGBA canvas may go past the
#: place where the crop just fits, on every side: what lies outside the canvas is transparent.
CROP_PAD = 0.1
#: A random background is drawn as a grid of colours this many times coarser than the view,
#: upsampled smoothly (half of the backgrounds; the other half are one flat random colour).
BACKGROUND_CELL = 8
#: A backdrop (`backdrop_views`) is shifted by up to this much, per channel, in every view, so
#: the object cannot lean on one exact colour of it.
BACKDROP_JITTER = 0.1


def random_backgrounds(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random backgrounds (count,3,size,size) in [0,1], on the CPU: each is either one
    flat random colour or smooth colour noise (a coarse random grid upsampled), with equal odds.
    An RGBA image laid over a new one every step cannot use its background to reach its goal."""
    flat = torch.rand(count, 1, 1, 1, generator=generator) < 0.5
    colour = torch.rand(count, 3, 1, 1, generator=generator)
    cells = max(1, size // BACKGROUND_CELL)
    grid = torch.rand(count, 3, cells, cells, generator=generator)
    smooth = F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False).clamp(0.0, 1.0)
    return torch.where(flat, colour.expand(count, 3, size, size), smooth)


def backdrop_image(colours: Sequence[Sequence[float]], height: int, width: int) -> torch.Tensor:
    """(1,3,height,width) on the CPU: one RGB colour (in [0,1]) flat, or two as a vertical
    gradient from the first (top row) to the second (bottom row)."""
    if not 1 <= len(colours) <= 2:
        raise ValueError(f"a backdrop is one or two colours, got {len(colours)}")
    top = torch.tensor(colours[0], dtype=torch.float32).view(1, 3, 1, 1)
    bottom = torch.tensor(colours[-1], dtype=torch.float32).view(1, 3, 1, 1)
    t = torch.linspace(0.0, 1.0, height).view(1, 1, height, 1)
    return (top + (bottom - top) * t).expand(1, 3, height, width).contiguous()


def backdrop_views(
    colours: Sequence[Sequence[float]], count: int, size: int, generator: torch.Generator
) -> torch.Tensor:
    """`count` backgrounds (count,3,size,size) in [0,1] on the CPU: the backdrop `colours`
    (`backdrop_image`) over the whole view, each shifted by U(±`BACKDROP_JITTER`) per channel."""
    shift = BACKDROP_JITTER * (2 * torch.rand(count, 3, 1, 1, generator=generator) - 1)
    return (backdrop_image(colours, size, size) + shift).clamp(0.0, 1.0)


class RandomCrops:
    """`views` random square views of each image, each resampled to `size` x `size` pixels.

    One view: a square of side U(`side`) times the canvas's shorter side, placed uniformly
    where it fits inside the canvas, rotated U(±`angle`)
    degrees about its centre, mirrored with probability `flip`, sampled with one bilinear
    `grid_sample` (edges reflected, where a rotated corner leaves the canvas) and given Gaussian
    noise of `noise`. A view larger than `size` is sampled from an antialiased downscaled copy,
    so a shrinking view averages pixels instead of skipping them (and its gradient reaches every
    pixel). Every draw of image i comes from `generators[i]`, so an image in a batch sees the
    views it would see alone.

    With `transparent`, the canvases are RGBA (B,4,H,W): a crop may reach `CROP_PAD` of the
    canvas side past its edges (transparent there), `side` may go above 1 (the view sees the
    whole canvas from further away, anywhere inside it) and each view is laid over its own
    background before the noise: a random one (`random_backgrounds`), or the `backdrop`
    colours (one or two RGB triples, `backdrop_views`).

    `draw(size_hw)` picks new views for canvases of (height, width); calling it applies them to
    a (B,3,H,W) batch (RGBA with `transparent`) and returns `views` tensors of (B,3,size,size),
    the j-th view of every image in the j-th. Differentiable; draws are on the CPU, the result
    on `x`'s device.
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        *,
        views: int,
        side: tuple[float, float],
        size: int,
        angle: float = CROP_ANGLE,
        flip: float = CROP_FLIP,
        noise: float = CROP_NOISE,
        transparent: bool = False,
        backdrop: Sequence[Sequence[float]] = (),
    ) -> None:
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        if not 0.0 < side[0] <= side[1] or (side[1] > 1.0 and not transparent):
            raise ValueError(f"side must be a range within (0, 1] (above 1 only when transparent), got {side}")
        if backdrop and not transparent:
            raise ValueError("a backdrop needs transparent canvases")
        self.generators = list(generators)
        self.views = views
        self.side = (float(side[0]), float(side[1]))
        self.size = int(size)
        self.angle = float(angle)
        self.flip = float(flip)
        self.noise = float(noise)
        self.transparent = bool(transparent)
        self.pad = CROP_PAD if transparent else 0.0
        self.backdrop = [tuple(float(v) for v in c) for c in backdrop]
        self.backgrounds: list[torch.Tensor] | None = None  # per image (views, 3, size, size)
        self.thetas: torch.Tensor | None = None  # (B, views, 2, 3) sampling grids' affine maps
        self.sides: torch.Tensor | None = None  # (B, views) crop sides in canvas pixels
        self.noises: list[torch.Tensor] | None = None  # per image (views, 3, size, size)
        self.size_hw: tuple[int, int] | None = None

    def draw(self, size_hw: tuple[int, int]) -> None:
        h, w = size_hw
        short = min(h, w)
        thetas, sides, noises, backgrounds = [], [], [], []
        for g in self.generators:
            u = torch.rand(self.views, 5, generator=g, dtype=torch.float64)
            frac = self.side[0] + (self.side[1] - self.side[0]) * u[:, 0]
            side = frac * short
            # the largest offset of the crop centre from the canvas centre that keeps it inside
            # (a crop larger than the canvas: that keeps the canvas inside the crop), plus the
            # margin `pad` on an RGBA canvas, in normalised coordinates (-1..1 spans the canvas,
            # so `pad` of the side is 2 * pad there)
            room_x = (1.0 - side / w).abs() + 2 * self.pad
            room_y = (1.0 - side / h).abs() + 2 * self.pad
            cx, cy = room_x * (2 * u[:, 1] - 1), room_y * (2 * u[:, 2] - 1)
            a = torch.deg2rad(self.angle * (2 * u[:, 3] - 1))
            mirror = torch.where(u[:, 4] < self.flip, -1.0, 1.0).to(torch.float64)
            theta = torch.zeros(self.views, 2, 3, dtype=torch.float64)
            # output (u, v) in -1..1 -> input: centre + rotation of the (mirrored) offset, scaled
            # by the crop side over each canvas side (so rotations stay rigid on any aspect)
            theta[:, 0, 0] = side / w * torch.cos(a) * mirror
            theta[:, 0, 1] = -side / w * torch.sin(a)
            theta[:, 1, 0] = side / h * torch.sin(a) * mirror
            theta[:, 1, 1] = side / h * torch.cos(a)
            theta[:, 0, 2] = cx
            theta[:, 1, 2] = cy
            thetas.append(theta.float())
            sides.append(side.float())
            if self.noise > 0:
                noises.append(self.noise * torch.randn(self.views, 3, self.size, self.size, generator=g))
            if self.backdrop:
                backgrounds.append(backdrop_views(self.backdrop, self.views, self.size, g))
            elif self.transparent:
                backgrounds.append(random_backgrounds(self.views, self.size, g))
        self.thetas = torch.stack(thetas)
        self.backgrounds = backgrounds or None
        self.sides = torch.stack(sides)
        self.noises = noises or None
        self.size_hw = (h, w)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        b, c, h, w = x.shape
        if len(self.generators) != b:
            raise ValueError(f"{len(self.generators)} generators for a batch of {b}")
        if c != (4 if self.transparent else 3):
            raise ValueError(f"expected {'RGBA' if self.transparent else 'RGB'} canvases, got {c} channels")
        padding = "zeros" if self.transparent else "reflection"  # transparent outside the canvas
        if self.thetas is None or self.size_hw != (h, w):
            self.draw((h, w))
        out = []
        for j in range(self.views):
            views = []
            for i in range(b):
                src = x[i : i + 1]
                shrink = float(self.sides[i, j]) / self.size  # type: ignore[index]
                if shrink > 1.0:
                    # normalised coordinates do not depend on resolution: the same map samples
                    # the downscaled copy at about one canvas pixel per view pixel
                    small = (max(1, round(h / shrink)), max(1, round(w / shrink)))
                    src = F.interpolate(src, size=small, mode="bilinear", align_corners=False, antialias=True)
                theta = self.thetas[i, j : j + 1].to(x.device, x.dtype)  # type: ignore[index]
                grid = F.affine_grid(theta, [1, x.shape[1], self.size, self.size], align_corners=False)
                views.append(F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False))
            batch = torch.cat(views)
            if self.backgrounds is not None:
                behind = torch.stack([bg[j] for bg in self.backgrounds]).to(x.device, x.dtype)
                batch = batch[:, :3] * batch[:, 3:] + behind * (1.0 - batch[:, 3:])
            if self.noises is not None:
                batch = batch + torch.stack([n[j] for n in self.noises]).to(x.device, x.dtype)
            out.append(batch)
        return out


def feedback(
    x: torch.Tensor, *, zoom: float = 1.05, rotate: float = 0.0, shift: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """The zoom-video feedback: zoom into the centre by `zoom` (>1 zooms in), rotate `rotate`
    degrees and shift by (dy, dx) pixels; edges are reflected, values clamped to [0,1]."""
    return affine(x, scale=zoom, angle_deg=rotate, shift=shift).clamp(0.0, 1.0)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with standard deviation `sigma` pixels (reflect padding)."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    radius_h = min(radius, x.shape[2] - 1)
    radius_w = min(radius, x.shape[3] - 1)
    kh = k[radius - radius_h : radius + radius_h + 1].view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    kw = k[radius - radius_w : radius + radius_w + 1].view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(x, (0, 0, radius_h, radius_h), mode="reflect"), kh / kh.sum(dim=2, keepdim=True), groups=c)
    x = F.conv2d(F.pad(x, (radius_w, radius_w, 0, 0), mode="reflect"), kw / kw.sum(dim=3, keepdim=True), groups=c)
    return x
