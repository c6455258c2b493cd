"""Regenerate the README gallery with any model: every picture is made by the `dreamer` command shown
beside it, so the gallery doubles as an end-to-end check of the commands.

    python scripts/gallery.py                               # efficientnet-lite0 (offline), into docs/gallery/
    python scripts/gallery.py --model googlenet --out docs/gallery/googlenet   # where its weights exist

Writes one PNG (or GIF) per entry and `commands.md` beside them: a table of picture, model and the
exact command. Units for `deconv` and `top-images` are chosen so that they fire: the channel of the
named layer that responds most strongly to the photo (a silent unit would give an empty picture).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def strongest_channel(model: str, layer: str, photo: Path, size: int) -> int:
    """The channel of `layer` with the largest mean activation on `photo` (so deconv and
    top-images show a unit that fires)."""
    import dreamer
    from dreamer.io.images import load_image

    network = dreamer.load_model(model)
    node = network.resolve(layer).node
    image = load_image(photo, size=size)
    acts = network.extractor([node])(image)[node]
    return int(acts.mean(dim=(0, 2, 3)).argmax())


def entries(model: str, out: Path, photo: Path) -> list[tuple[str, str, list[str]]]:
    """(file name, caption, dreamer arguments) for each gallery picture."""
    from dreamer.models import get_spec

    layer = get_spec(model).resolve("@middle").name
    unit = strongest_channel(model, layer, photo, 224)
    p = os.path.relpath(photo, ROOT)
    m = ["--model", model]
    return [
        ("dream-low-level.png", "low-level preset: strokes and textures",
         ["run", p, "--preset", "low-level", "--size", "384", *m]),
        ("dream-high-level.png", "high-level preset: eyes, faces, animal parts",
         ["run", p, "--preset", "high-level", "--size", "384", *m]),
        ("dream-astronaut.png", "the photo steers the dream (high-level on another photo)",
         ["run", "samples/astronaut.png", "--preset", "high-level", "--size", "384", *m]),
        ("from-noise.png", "from-noise preset: a dream grown from grey noise",
         ["run", "noise:384x384", "--preset", "from-noise", *m]),
        ("zoom.gif", "zoom from noise (iterative zoom feedback, 24 frames)",
         ["zoom", "noise:192x192", "--frames", "24", "--zoom", "1.05", "--preset", "high-level",
          "--octaves", "2", "--steps", "6", "--fps", "8", *m]),
        ("activations.png", "activations: the strongest maps of a middle layer",
         ["activations", p, "--layer", layer, "--top", "9", "--size", "224", *m]),
        ("filters.png", "filters: the first convolution's kernels", ["filters", *m]),
        ("occlusion.png", "occlusion: where hiding the photo lowers the top class",
         ["occlusion", p, "--size", "160", "--patch", "32", "--stride", "16", *m]),
        ("deconv.png", f"guided backpropagation of unit {layer}:{unit}",
         ["deconv", p, "--layer", f"{layer}:{unit}", "--rule", "guided", "--size", "224", *m]),
        ("top-images.png", f"top-images: the sample photos that most excite {layer}:{unit}",
         ["top-images", "samples", "--layer", f"{layer}:{unit}", "--top", "4", "--no-cache", *m]),
        ("channels.png", f"channels: what four units of {layer} respond to, grown from noise",
         ["channels", "--layer", layer, "--count", "4", "--size", "128", "--steps", "96", *m]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--photo", type=Path, default=SAMPLES / "chelsea.png")
    parser.add_argument("--only", action="append", help="make only these file names (repeatable)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    failed = 0
    for name, caption, dreamer_args in entries(args.model, args.out, args.photo.resolve()):
        command = ["dreamer", *dreamer_args, "-o", os.path.relpath(args.out / name, ROOT), "--force"]
        shown = shlex.join(command[:-1])  # --force is the script's business, not the reader's
        rows.append(f"| ![{caption}]({name}) | {caption} | `{shown}` |")
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "dreamer", *command[1:], "--quiet"], cwd=ROOT)
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        failed += done.returncode != 0
        print(f"{name}: {status} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    out = args.out.resolve()
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out  # as typed from the repository
    table = "\n".join(
        [f"# Gallery ({args.model})", "", "Made by `python scripts/gallery.py --model " + args.model + "`.", "",
         "| picture | what | command |", "| --- | --- | --- |", *rows, "",
         "Made by other scripts: `classes.png`, the eight class presets (`OMP_NUM_THREADS=1 python "
         f"scripts/quality.py --model {args.model} --sheet {shown}/classes.png`; labels: robust p / held-out p), "
         "and `presets-preview.png` (`dreamer presets preview samples/chelsea.png --model "
         f"{args.model} -o {shown}/presets-preview.png`).", ""]
    )
    (args.out / "commands.md").write_text(table)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
