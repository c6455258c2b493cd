"""Image parameterisations: how the image that a render optimises is represented.

A parameterisation holds trainable tensors and maps them to a batch of RGB images
(B,3,H,W) float32 in [0,1] on their device. Two are offered:

- `PixelImage`: one value per pixel and channel (through the colour map below);
- `FourierImage`: the image's 2-D Fourier coefficients, each scaled by 1/frequency, so that a
  step of the same size moves coarse structure as much as fine detail. Plain gradient ascent
  on pixels is dominated by high frequencies (the gradient of a CNN is); in this basis it is
  not, which is why feature visualisations grown from noise come out as shapes rather than
  static (Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017).

Both map their values to colours the same way: optionally "decorrelated" (each of the three
values is a direction of the ImageNet colour covariance, so a step changes brightness and hue
separately instead of R, G, B), then a sigmoid into [0,1].

Both can start from a given image: the map is inverted so that, before any step, the
parameterisation reproduces the start image (up to clamping into [`EPS`, 1-`EPS`]).

`WithOpacity` adds an opacity channel (its own Fourier image, smoother than the colours): the
image becomes RGBA, (B,4,H,W), which the render loop lays over random backgrounds so that what
does not serve the objective can fade away (`composite`), leaving the object alone.
"""

from __future__ import annotations

import torch

__all__ = [
    "Parameterization",
    "PixelImage",
    "FourierImage",
    "WithOpacity",
    "composite",
    "make_parameterization",
    "COLOR_BASIS",
    "EPS",
    "OPACITY_DECAY",
]

#: Columns: the principal colour directions of ImageNet photos, scaled by their standard
#: deviations (a square root of the RGB covariance). These are the published values used by
#: the feature-visualisation literature (Lucid's `color_correlation_svd_sqrt`).
COLOR_BASIS = (
    (0.26, 0.09, 0.02),
    (0.27, 0.00, -0.05),
    (0.27, -0.09, 0.03),
)

#: Start images are clamped into [EPS, 1-EPS] before the sigmoid is inverted: exactly 0 or 1
#: would need infinite values, and values far into the sigmoid's flat tails barely move.
EPS = 0.01

#: Spectrum exponent of the opacity channel's Fourier image: steeper than the colours' so that
#: the opacity forms solid shapes instead of speckles.
OPACITY_DECAY = 2.0

# The Fourier image's values are divided by this before the colour map, so that spectra of a
# few hundredths (the scale of random initialisation) give a mid-grey, faintly textured image.
_FOURIER_GAIN = 4.0


def _color_matrix(decorrelate: bool, device: torch.device, channels: int = 3) -> torch.Tensor:
    if not decorrelate:
        return torch.eye(channels, device=device)
    m = torch.tensor(COLOR_BASIS, dtype=torch.float64)
    # normalised so the largest direction has unit length: steps keep the scale of plain RGB
    m = m / m.norm(dim=0).max()
    return m.to(device=device, dtype=torch.float32)


def _to_logits(values: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """(B,C,H,W) unbounded values -> (B,C,H,W) logits (the colour map; a sigmoid follows)."""
    return torch.einsum("ij,bjhw->bihw", matrix, values)


def _from_rgb(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of `_to_logits` and the sigmoid for an image in [0,1] (clamped into [EPS, 1-EPS] first)."""
    logits = torch.logit(image.clamp(EPS, 1.0 - EPS))
    inverse = torch.linalg.inv(matrix.double()).float()
    return torch.einsum("ij,bjhw->bihw", inverse, logits)


class Parameterization:
    """Trainable tensors (`parameters`) and the images they stand for (call it)."""

    def __init__(self, size_hw: tuple[int, int], batch: int) -> None:
        self.size_hw = size_hw
        self.batch = batch

    def parameters(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def logits(self) -> torch.Tensor:
        """(B,3,H,W) float32: the images before the sigmoid (RGB logits), differentiable."""
        raise NotImplementedError

    def __call__(self) -> torch.Tensor:
        """The images, (B,C,H,W) float32 in [0,1] (C = 3, or 4 with opacity), differentiable
        with respect to `parameters`."""
        return torch.sigmoid(self.logits())


class PixelImage(Parameterization):
    """One (colour-mapped, sigmoid-squashed) value per pixel and channel."""

    def __init__(self, start: torch.Tensor, *, decorrelate: bool = True) -> None:
        super().__init__(tuple(start.shape[-2:]), start.shape[0])  # type: ignore[arg-type]
        self.matrix = _color_matrix(decorrelate, start.device)
        self.values = _from_rgb(start.detach().float(), self.matrix).requires_grad_(True)

    def parameters(self) -> list[torch.Tensor]:
        return [self.values]

    def logits(self) -> torch.Tensor:
        return _to_logits(self.values, self.matrix)


def _frequency_scale(size_hw: tuple[int, int], decay: float, device: torch.device) -> torch.Tensor:
    """(H, W//2+1): 1/|f|**decay for the frequencies of `rfft2`, |f| in cycles per pixel.

    The zero frequency (and anything below one cycle per image) gets the value of one cycle
    per image instead of infinity.
    """
    h, w = size_hw
    fy = torch.fft.fftfreq(h, device=device).view(-1, 1)
    fx = torch.fft.rfftfreq(w, device=device).view(1, -1)
    f = torch.sqrt(fy**2 + fx**2).clamp_min(1.0 / max(h, w))
    return f.pow(-decay)


class FourierImage(Parameterization):
    """The image as 2-D Fourier coefficients scaled by 1/frequency**`decay`.

    Parameters: one real tensor (B,C,H,W//2+1,2) holding the complex spectrum of each
    (colour-decorrelated) channel. The image is periodic: what leaves one edge comes in at
    the other, so cyclic shifts (jitter) cost nothing. `start` may have any number of channels
    C when `decorrelate` is false (the opacity channel of `WithOpacity` is one).
    """

    def __init__(self, start: torch.Tensor, *, decorrelate: bool = True, decay: float = 1.0) -> None:
        super().__init__(tuple(start.shape[-2:]), start.shape[0])  # type: ignore[arg-type]
        device = start.device
        if decorrelate and start.shape[1] != 3:
            raise ValueError(f"decorrelated colours need 3 channels, got {start.shape[1]}")
        self.matrix = _color_matrix(decorrelate, device, start.shape[1])
        self.scale = _frequency_scale(self.size_hw, decay, device)
        values = _from_rgb(start.detach().float(), self.matrix) * _FOURIER_GAIN
        spectrum = torch.fft.rfft2(values, norm="ortho") / self.scale
        self.spectrum = torch.view_as_real(spectrum).contiguous().requires_grad_(True)

    def parameters(self) -> list[torch.Tensor]:
        return [self.spectrum]

    def logits(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        values = torch.fft.irfft2(spectrum, s=self.size_hw, norm="ortho") / _FOURIER_GAIN
        return _to_logits(values, self.matrix)


class WithOpacity(Parameterization):
    """A colour parameterisation plus an opacity channel: calling it gives RGBA (B,4,H,W).

    The opacity is a one-channel Fourier image (spectrum 1/f**`OPACITY_DECAY`, no colour map)
    through a sigmoid. It starts opaque (1 - `EPS`), so the start image shows as it is.
    """

    def __init__(self, colors: Parameterization, start: torch.Tensor) -> None:
        super().__init__(colors.size_hw, colors.batch)
        self.colors = colors
        opaque = torch.ones_like(start[:, :1])
        self.opacity = FourierImage(opaque, decorrelate=False, decay=OPACITY_DECAY)

    def parameters(self) -> list[torch.Tensor]:
        return [*self.colors.parameters(), *self.opacity.parameters()]

    def logits(self) -> torch.Tensor:
        return torch.cat([self.colors.logits(), self.opacity.logits()], 1)


def composite(rgba: torch.Tensor, background: torch.Tensor | float) -> torch.Tensor:
    """RGBA images (B,4,H,W) laid over `background` (a number, or RGB broadcastable to
    (B,3,H,W)): (B,3,H,W). An RGB batch is returned as it is."""
    if rgba.shape[1] == 3:
        return rgba
    alpha = rgba[:, 3:]
    return rgba[:, :3] * alpha + background * (1.0 - alpha)


def make_parameterization(
    kind: str, start: torch.Tensor, *, decorrelate: bool = True, decay: float = 1.0, opacity: bool = False
) -> Parameterization:
    """The parameterisation `kind` ("pixel" or "fft") reproducing `start` (B,3,H,W) in [0,1].

    `decay` is the Fourier image's spectrum exponent (ignored by ``pixel``); `opacity` adds an
    opacity channel (`WithOpacity`, RGBA out). Its tensors live on `start`'s device.
    """
    if start.dim() != 4 or start.shape[1] != 3:
        raise ValueError(f"start must be (B,3,H,W), got {tuple(start.shape)}")
    if kind == "fft":
        colors: Parameterization = FourierImage(start, decorrelate=decorrelate, decay=decay)
    elif kind == "pixel":
        colors = PixelImage(start, decorrelate=decorrelate)
    else:
        raise ValueError(f"unknown parameterisation {kind!r} (pixel or fft)")
    return WithOpacity(colors, start) if opacity else colors
