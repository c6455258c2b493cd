"""`dreamer bench`: plain reference loops and dreamer's loops, timed side by side."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import OutputError, OutputExistsError, UsageError
from . import main
from .common import FiniteFloat

_CASE_NAMES = ("frame512", "still1080", "batch16", "still4k", "render384")


def _split_cases(values: tuple[str, ...]) -> list[str]:
    names: list[str] = []
    for value in values:
        names.extend(part.strip() for part in value.split(",") if part.strip())
    return names


def _write_json(path: Path, data: dict) -> None:
    """Write atomically (`dreamer.io.atomic`: a temporary file beside `path`, then a rename)."""
    import json

    from ..io.atomic import write_text

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: {folder} is not a directory")
    write_text(path, json.dumps(data, indent=2) + "\n")


@main.command()
@click.option("--device", "-d", metavar="auto|cpu|cuda[:N]|mps", help="Device [default auto].")
@click.option(
    "--cases", "cases", multiple=True, metavar="NAME[,NAME...]",
    help=f"Cases to run: {', '.join(_CASE_NAMES)} [default: all; on a CPU frame512 and render384].",
)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Timed runs per side (the median is reported).")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Untimed runs per side first.")
@click.option("--model", "-m", default="googlenet", show_default=True, metavar="NAME", help="Model to time (see `dreamer models`).")
@click.option("--layer", "-l", help="Layer both sides dream about (dream cases) [default: the model's default layer].")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True, help="Dreamer's precision (the reference is always fp32).")
@click.option("--tile", type=click.IntRange(min=64), help="Dreamer's tile size in pixels [default automatic].")
@click.option("--size-scale", type=FiniteFloat(min=0.01, max=4.0), help="Multiply every case's image size by this.")
@click.option("--tiny", is_flag=True, help="CI-sized: 96-px images, 2 octaves x 2 steps, 1 run, no warm-up.")
@click.option("--weights", "-w", default="random", show_default=True, metavar="random[:SEED]|pretrained|PATH", help="Weights (random: no download; speed is the same).")
@click.option("--no-memory", is_flag=True, help="Skip the extra run per side that measures peak memory.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the results to this JSON file.")
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing --json file.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch [default: OMP_NUM_THREADS if set, else torch's choice].")
@click.option("--quiet", "-q", is_flag=True, help="Only the table.")
def bench(
    device: str | None,
    cases: tuple[str, ...],
    repeats: int,
    warmup: int,
    model: str,
    layer: str | None,
    precision: str,
    tile: int | None,
    size_scale: float | None,
    tiny: bool,
    weights: str,
    no_memory: bool,
    json_path: Path | None,
    force: bool,
    threads: int | None,
    quiet: bool,
) -> None:
    """Time plain reference loops and dreamer's loops side by side.

    Dream cases: the reference is the 2015 recipe written plainly (eager fp32, batch 1,
    BatchNorm as built, forward truncated at the layer, roll jitter, step / mean |g|).
    Render cases: the reference is the same render loop in plain eager fp32 (one autograd
    graph through the network as built). Dreamer's side is what `dreamer run` uses. Same
    inputs, weights, sizes, steps and seeds; warm-up excluded, medians of --repeats runs, the
    device synchronised before each clock reading.

    \b
    Cases (octaves x steps):
      frame512   one 512x512 zoom-video frame (1 x 10)
      still1080  a 1920x1080 still (4 x 10)
      batch16    16 frames of 512x512 in one batch (1 x 10); the reference runs
                 one frame at batch 1 and is scaled x16 (single-frame throughput)
      still4k    a 3840x2160 still (4 x 10)
      render384  a class render (banana) from faint noise, 384x384: 64 Adam steps,
                 fft parameterisation, standard transforms

    \b
    Examples:
      dreamer bench                          # all cases on the GPU (frame512, render384 on a CPU)
      dreamer bench --device cpu --cases render384 --threads 1 --repeats 5 --json cpu.json
      dreamer bench --tiny                   # seconds: checks that everything runs
    """
    if json_path is not None and json_path.exists() and json_path.is_dir():
        raise UsageError(f"--json {json_path} is a directory; give a file name")
    if json_path is not None and json_path.exists() and not force:
        raise OutputExistsError(f"--json {json_path} already exists", hint="pass --force to overwrite it")
    if json_path is not None and not (json_path.parent if str(json_path.parent) else Path(".")).is_dir():
        raise UsageError(f"--json {json_path}: the folder {json_path.parent} does not exist")

    from ..bench import format_table, run_bench, scale_case, select_cases, tiny_case
    from ..devices import resolve_device, set_threads
    from ..models import load_model

    set_threads(threads)
    dev = resolve_device(device or "auto")
    selected = select_cases(_split_cases(cases), dev)
    if size_scale is not None:
        selected = [scale_case(c, size_scale) for c in selected]
    if tiny:
        selected = [tiny_case(c) for c in selected]
        repeats, warmup = 1, 0
    network = load_model(model, weights=weights, device=dev, progress=not quiet)
    layer = layer or network.spec.default_layer
    network.resolve(layer)  # an unknown layer fails here, before any work

    def progress(text: str) -> None:
        if not quiet:
            click.echo(f"  {text}", err=True)

    result = run_bench(
        network, selected, layer=layer, repeats=repeats, warmup=warmup, precision=precision,
        tile=tile, measure_memory=not no_memory, on_progress=progress,
    )
    click.echo(format_table(result))
    if tiny:
        click.echo("tiny: one run, no warm-up (preparation is timed too): it checks that everything runs; "
                   "these times are not a measurement")
    if json_path is not None:
        _write_json(json_path, result.to_dict())
        if not quiet:
            click.echo(f"wrote {json_path}", err=True)
