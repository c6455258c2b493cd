"""A benchmark of dreamer's loops against plain reference loops, side by side.

Two kinds of case:

- ``dream`` cases: the reference is the 2015 DeepDream recipe written plainly: eager fp32,
  batch 1, the network as built (BatchNorm and all), the forward pass truncated at the layer,
  `torch.roll` jitter, the step normalised by the mean |gradient|, an octave pyramid that
  re-injects detail. Dreamer's side is `dreamer.loops.deepdream.dream` as users get it.
- ``render`` cases (a class render from faint noise): the reference is the render loop as it
  was before it shared the backend, written plainly: a Fourier parameterisation optimised with
  Adam through the standard transforms, one eager fp32 autograd graph from the coefficients
  through the network as built to the class logit. Dreamer's side is
  `dreamer.loops.render.render`.

Dreamer's side runs with its default precision, tiling and one `PreparedNetwork` held for all
runs (as a video holds one for all its frames); both sides get the same inputs, weights, sizes,
steps, seeds and transforms.

Pure: returns results and formats a table; never prints, never writes files (the CLI does).
Timings: warm-up runs excluded, each side's median over `repeats` runs, the device synchronised
before every clock reading. The two sides alternate run by run, so load on the machine affects
both alike.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import gc
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from . import transforms as T
from .backend import PreparedNetwork
from .classes import resolve_class
from .config import DreamConfig
from .errors import UnknownNameError
from .loops import noise_amplitude, plan_octaves, run_config
from .loops.parameterization import FourierImage

__all__ = [
    "BenchCase",
    "CASES",
    "CPU_CASES",
    "select_cases",
    "scale_case",
    "tiny_case",
    "classic_dream",
    "plain_render",
    "CaseResult",
    "BenchResult",
    "run_bench",
    "format_table",
]


@dataclass(frozen=True)
class BenchCase:
    """One benchmark case: `batch` images of (height, width), `octaves` x `steps`.

    `kind` ``dream``: the classic loop on the bench's layer; ``render``: a render of the class
    `class_name` (fft parameterisation, standard transforms, Adam)."""

    name: str
    label: str
    size_hw: tuple[int, int]
    batch: int = 1
    octaves: int = 1
    steps: int = 10
    kind: str = "dream"
    class_name: str = ""


CASES: dict[str, BenchCase] = {
    c.name: c
    for c in (
        BenchCase("frame512", "frame 512x512", (512, 512), 1, 1, 10),
        BenchCase("still1080", "still 1920x1080", (1080, 1920), 1, 4, 10),
        BenchCase("batch16", "16 frames 512x512", (512, 512), 16, 1, 10),
        BenchCase("still4k", "still 3840x2160", (2160, 3840), 1, 4, 10),
        BenchCase("render384", "class render 384x384 (banana)", (384, 384), 1, 1, 64, kind="render", class_name="banana"),
    )
}
#: the cases run by default on a CPU (the others take many minutes there)
CPU_CASES = ("frame512", "render384")
#: the render cases' settings besides size and steps: one view of the standard transforms, the
#: recipe the reference loop (`plain_render`) implements (the class presets now use crops)
RENDER_JITTER = 16
RENDER_LEARNING_RATE = 0.05


def select_cases(names: Sequence[str] | None, device: torch.device) -> list[BenchCase]:
    """The cases called `names` (all by default; `CPU_CASES` by default on a CPU)."""
    if not names:
        names = CPU_CASES if device.type == "cpu" else tuple(CASES)
    out = []
    for name in names:
        if name not in CASES:
            raise UnknownNameError("bench case", name, CASES, listing="dreamer bench --help")
        out.append(CASES[name])
    return out


def scale_case(case: BenchCase, scale: float, *, min_side: int = 32) -> BenchCase:
    """`case` with both sides multiplied by `scale` (at least `min_side` each)."""
    h, w = case.size_hw
    size = (max(min_side, round(h * scale)), max(min_side, round(w * scale)))
    return replace(case, size_hw=size, label=f"{case.label} x{scale:g}")


def tiny_case(case: BenchCase) -> BenchCase:
    """A CI-sized version of `case`: longest side 96 px, at most 2 images, 2 octaves, 2 steps."""
    h, w = case.size_hw
    f = 96 / max(h, w)
    size = (max(48, round(h * f)), max(48, round(w * f)))
    return replace(
        case,
        size_hw=size,
        batch=min(case.batch, 2),
        octaves=min(case.octaves, 2),
        steps=min(case.steps, 2),
        label=f"{case.label} (tiny: {min(case.batch, 2)} x {size[1]}x{size[0]})",
    )


# ---------------------------------------------------------------------------------------------
# The classic reference


def classic_dream(
    network,
    node: str,
    image: torch.Tensor,
    sizes: Sequence[tuple[int, int]],
    *,
    steps: int,
    step_size: float = 1.5,
    jitter: int = 32,
    seed: int = 0,
) -> torch.Tensor:
    """The 2015 recipe on one (1,3,H,W) [0,1] image, octave `sizes` smallest first (the last
    is the image's own size): eager fp32, the network as built (BatchNorm unfolded), truncated
    at `node`, objective mean of squared activations, roll jitter, step / mean |g|."""
    model = network.extractor([node])  # runs the stages up to `node`, nothing after
    generator = torch.Generator().manual_seed(seed)
    octaves = [image]
    for size in reversed(sizes[:-1]):
        octaves.append(F.interpolate(octaves[-1], size=size, mode="bilinear", align_corners=False, antialias=True))
    octaves.reverse()
    detail = torch.zeros_like(octaves[0])
    x = octaves[0]
    for base in octaves:
        if detail.shape != base.shape:
            detail = F.interpolate(detail, size=base.shape[-2:], mode="bilinear", align_corners=False)
        x = (base + detail).clamp(0, 1)
        for _ in range(steps):
            oy, ox = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
            x = torch.roll(x, (oy, ox), dims=(2, 3)).detach().requires_grad_(True)
            loss = model(x)[node].pow(2).mean()
            loss.backward()
            g = x.grad
            x = x.detach() + (step_size / 255.0) / g.abs().mean() * g
            x = torch.roll(x, (-oy, -ox), dims=(2, 3)).clamp(0, 1)
        detail = x - base
    return x.detach()


def plain_render(
    network,
    node: str,
    index: int,
    start: torch.Tensor,
    *,
    steps: int,
    learning_rate: float = RENDER_LEARNING_RATE,
    jitter: int = RENDER_JITTER,
    seed: int = 0,
) -> torch.Tensor:
    """The render loop before it shared the backend, on one (1,3,H,W) [0,1] start: eager fp32,
    the network as built (BatchNorm unfolded), one autograd graph from the Fourier coefficients
    through roll + standard transforms and the network (truncated at `node`) to logit `index`,
    maximised with Adam."""
    extractor = network.extractor([node])
    param = FourierImage(start, decorrelate=True)
    optimizer = torch.optim.Adam(param.parameters(), lr=learning_rate)
    generators = [torch.Generator().manual_seed(seed)]
    standard = T.standard_transform(generators, jitter)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        x = T.roll(param(), T.draw_shifts(generators, jitter))
        standard.draw()
        loss = -extractor(standard(x))[node][:, index].float().sum()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return param().clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _time_ms(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - t0) * 1000.0


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _trim_heap() -> None:
    # hand freed heap pages back to the OS so the RSS baseline is what is really in use
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


MEMORY_MEASURES = {
    "cuda": "peak bytes allocated by torch on the GPU during the run (torch.cuda.max_memory_allocated, "
    "weights included)",
    "cpu": "peak resident memory (RSS) above the RSS just before the run, sampled every 2 ms from "
    "/proc/self/statm after malloc_trim",
}


def _peak_memory(fn: Callable[[], Any], device: torch.device) -> int | None:
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return int(torch.cuda.max_memory_allocated(device))
    if device.type != "cpu" or _rss_bytes() is None:
        return None
    gc.collect()
    _trim_heap()
    base = _rss_bytes() or 0
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes() or 0)
            done.wait(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes() or 0)
    return peak[0] - base


@dataclass
class CaseResult:
    """Measurements of one case. Times are milliseconds per run of the whole case (all octaves
    and steps, all images); `reference_frames` < `batch` means the reference (batch 1) ran that
    many images and its time was scaled to the batch (the single-frame throughput)."""

    case: BenchCase
    reference_ms: float
    dreamer_ms: float
    reference_runs_ms: list[float]
    dreamer_runs_ms: list[float]
    reference_peak_bytes: int | None
    dreamer_peak_bytes: int | None
    reference_frames: int
    dreamer_path: dict[str, Any] = field(default_factory=dict)
    #: what the case maximised: a layer, or "class NAME"
    target: str = ""

    @property
    def speedup(self) -> float:
        return self.reference_ms / self.dreamer_ms if self.dreamer_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["case"]["size_hw"] = list(self.case.size_hw)
        steps = self.case.octaves * self.case.steps
        d["speedup"] = self.speedup
        # per-run ratios of the alternating runs: less sensitive to load that comes and goes
        d["speedup_paired_median"] = statistics.median(
            r / o for r, o in zip(self.reference_runs_ms, self.dreamer_runs_ms) if o > 0
        ) if self.dreamer_runs_ms else None
        d["reference_ms_per_step"] = self.reference_ms / steps
        d["dreamer_ms_per_step"] = self.dreamer_ms / steps
        return d


@dataclass
class BenchResult:
    device: str
    device_name: str
    torch_version: str
    threads: int
    date: str
    layer: str
    node: str
    weights: str
    precision: str
    tile: int | None
    repeats: int
    warmup: int
    memory_measure: str | None
    cases: list[CaseResult]

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "cases"}
        d["cases"] = [c.to_dict() for c in self.cases]
        return d


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        model = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.partition(":")[2].strip()
                        break
        except OSError:
            pass
        return f"{model}, {os.cpu_count()} logical CPUs"
    return device.type


def _inputs(case: BenchCase, device: torch.device, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h, w = case.size_hw
    if case.kind == "render":  # renders start from faint noise, as `dreamer run noise:...` does
        noise = torch.rand(case.batch, 3, h, w, generator=g)
        return (0.5 + noise_amplitude("fft") * (2 * noise - 1)).clamp(0, 1).to(device)
    # smooth seeded images (like photographs, unlike white noise), one per frame
    coarse = torch.rand(case.batch, 3, max(2, h // 32), max(2, w // 32), generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1).to(device)


def run_bench(
    network,
    cases: Sequence[BenchCase],
    *,
    layer: str = "mixed4c",
    repeats: int = 3,
    warmup: int = 1,
    precision: str = "auto",
    tile: int | None = None,
    seed: int = 0,
    measure_memory: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Time each case's reference and dreamer's loop side by side on `network`'s device.

    `layer` is what the dream cases maximise (render cases grow their class). `on_progress`
    receives short notes ("frame512: run 2/3") as the runs go.
    """
    device = network.device
    info = network.resolve(layer)
    node = info.node
    note = on_progress or (lambda _text: None)
    prepared = PreparedNetwork(network)
    results = []
    for case in cases:
        images = _inputs(case, device, seed)
        if case.kind == "render":
            index = resolve_class(case.class_name, network.categories)
            logits = network.resolve("logits").node
            target = f"class {case.class_name}"
            config = DreamConfig(
                layers=(), classes=(case.class_name,), param="fft", transforms="standard", steps=case.steps,
                jitter=RENDER_JITTER, learning_rate=RENDER_LEARNING_RATE, precision=precision, tile=tile, seed=seed,
            )

            def reference() -> None:
                plain_render(network, logits, index, images[:1], steps=case.steps, seed=seed)

        else:
            target = info.name
            config = DreamConfig(
                layers=(layer,), octaves=case.octaves, steps=case.steps, step_size=1.5, jitter=32,
                precision=precision, tile=tile, seed=seed,
            )
            plan = plan_octaves(case.size_hw, case.octaves, config.octave_scale, network.min_size)

            def reference() -> None:
                classic_dream(network, node, images[:1], plan.sizes, steps=case.steps, seed=seed)

        # the reference runs at batch 1: one image, timed, then scaled to the batch
        ref_frames = 1

        def ours() -> None:
            run_config(images, prepared, config)

        for i in range(warmup):
            note(f"{case.name}: warm-up {i + 1}/{warmup}")
            reference()
            ours()
        ref_runs, our_runs = [], []
        for i in range(repeats):
            note(f"{case.name}: run {i + 1}/{repeats}")
            ref_runs.append(_time_ms(reference, device) * case.batch / ref_frames)
            our_runs.append(_time_ms(ours, device))
        ref_peak = our_peak = None
        if measure_memory:
            note(f"{case.name}: memory")
            ref_peak = _peak_memory(reference, device)
            our_peak = _peak_memory(ours, device)
        results.append(
            CaseResult(
                case, statistics.median(ref_runs), statistics.median(our_runs), ref_runs, our_runs,
                ref_peak, our_peak, ref_frames, dict(prepared.last), target,
            )
        )
        del images
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return BenchResult(
        device=str(device),
        device_name=_device_name(device),
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
        date=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        layer=info.name,
        node=node,
        weights=network.weights,
        precision=precision,
        tile=tile,
        repeats=repeats,
        warmup=warmup,
        memory_measure=MEMORY_MEASURES.get(device.type) if measure_memory else None,
        cases=results,
    )


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f} MiB"


def format_table(result: BenchResult) -> str:
    """The results as a plain-text table (one row per case) with a short header."""
    head = ("case", "reference ms", "dreamer ms", "speed-up", "ref peak", "dreamer peak")
    rows = []
    notes = []
    for r in result.cases:
        name = r.case.label
        if r.reference_frames < r.case.batch:
            name += " *"
            notes.append(
                f"* reference: batch 1, {r.reference_frames} frame timed and scaled x{r.case.batch}"
            )
        rows.append(
            (
                name,
                f"{r.reference_ms:,.1f}",
                f"{r.dreamer_ms:,.1f}",
                f"{r.speedup:.2f}x",
                _mib(r.reference_peak_bytes),
                _mib(r.dreamer_peak_bytes),
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = [
        f"dreamer bench: {result.device} ({result.device_name}), torch {result.torch_version}, "
        f"{result.threads} threads, layer {result.layer} (dream cases), weights {result.weights}, "
        f"precision {result.precision}",
        f"median of {result.repeats} run(s) after {result.warmup} warm-up; ms per whole case (all octaves and steps)",
        "",
        "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head)),
    ]
    for row in rows:
        lines.append("  ".join(v.ljust(widths[0]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(row)))
    for n in dict.fromkeys(notes):
        lines.append(n)
    kinds = {r.case.kind for r in result.cases}
    if "dream" in kinds:
        lines.append("reference (dream cases): the classic 2015 loop, eager fp32, BatchNorm as built")
    if "render" in kinds:
        lines.append("reference (render cases): the same render loop in plain eager fp32, one autograd graph, "
                     "BatchNorm as built")
    if result.memory_measure:
        lines.append(f"memory: {result.memory_measure}")
    for r in result.cases:
        if r.dreamer_path:
            desc = ", ".join(f"{k}={v}" for k, v in r.dreamer_path.items())
            lines.append(f"dreamer path ({r.case.name}): {desc}")
    return "\n".join(lines)
