"""Text for contact-sheet labels: the one place in dreamer.visualize where Pillow is used.

A Pillow boundary like `dreamer.io.images`: text goes in, a plain numpy mask comes out, and the
rest of the package composes sheets with torch.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["text_mask"]


@functools.lru_cache(maxsize=8)
def _font(height: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        # Pillow >= 10.1 with FreeType: a scalable bundled font
        return ImageFont.load_default(size=height)
    except (TypeError, ImportError, OSError, AttributeError):
        return ImageFont.load_default()  # the fixed bitmap font of older Pillows


def text_mask(text: str, height: int, max_width: int | None = None) -> np.ndarray:
    """`text` drawn as an (h, w) float32 coverage mask in [0, 1] (1 = ink), h = `height`.

    The font is sized so that ordinary letters fill about three quarters of the height.
    Text wider than `max_width` pixels is shortened with an ellipsis.
    """
    height = max(1, int(height))
    font = _font(max(6, round(height * 0.75)))

    def width_of(s: str) -> int:
        left, _, right, _ = font.getbbox(s)
        return max(1, int(right - min(left, 0)))

    if max_width is not None and width_of(text) > max_width:
        while text and width_of(text + "…") > max_width:
            text = text[:-1]
        text = text + "…" if text else ""
    width = width_of(text) if text else 1
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    _, top, _, bottom = font.getbbox("Ag")  # the same baseline for every label
    draw.text((0, (height - (bottom - top)) / 2 - top), text, fill=255, font=font)
    return np.asarray(canvas, dtype=np.float32) / 255.0
