"""A benchmark of dreamer's engine against the classic reference loop, side by side.

The reference is the 2015 DeepDream recipe written plainly: eager fp32, batch 1, the network as
torchvision builds it (BatchNorm and all), the forward pass truncated at the layer, `torch.roll`
jitter, the step normalised by the mean |gradient|, an octave pyramid that re-injects detail.
Dreamer's side is `engine.dream` as users get it (default precision, tiling, caching). Both run
on the same inputs, with the same layer, weights, octave sizes, step count and jitter.

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

from .errors import UnknownNameError

__all__ = [
    "BenchCase",
    "CASES",
    "CPU_CASES",
    "select_cases",
    "scale_case",
    "tiny_case",
    "classic_dream",
    "CaseResult",
    "BenchResult",
    "run_bench",
    "format_table",
]


@dataclass(frozen=True)
class BenchCase:
    """One benchmark case: `batch` images of (height, width), `octaves` x `steps`."""

    name: str
    label: str
    size_hw: tuple[int, int]
    batch: int = 1
    octaves: int = 1
    steps: int = 10


CASES: dict[str, BenchCase] = {
    c.name: c
    for c in (
        BenchCase("frame512", "frame 512x512", (512, 512), 1, 1, 10),
        BenchCase("still1080", "still 1920x1080", (1080, 1920), 1, 4, 10),
        BenchCase("batch16", "16 frames 512x512", (512, 512), 16, 1, 10),
        BenchCase("still4k", "still 3840x2160", (2160, 3840), 1, 4, 10),
    )
}
#: the cases run by default on a CPU (the others take many minutes there)
CPU_CASES = ("frame512",)


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
    # smooth seeded images (like photographs, unlike white noise), one per frame
    g = torch.Generator().manual_seed(seed)
    h, w = case.size_hw
    coarse = torch.rand(case.batch, 3, max(2, h // 32), max(2, w // 32), generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1).to(device)


def describe_path(fn) -> dict[str, Any]:
    """What a gradient function does (precision, folding, graphs, tiles), for the report."""
    from .backend.fast import FastGradient, GraphedGradient
    from .backend.gradients import EagerGradient
    from .backend.tiling import TiledGradient

    out: dict[str, Any] = {}
    seen = 0
    while fn is not None and seen < 6:
        seen += 1
        if isinstance(fn, TiledGradient):
            out["tiles_last_call"] = fn.last_tiles
            out["halo"] = fn.layout.halo
            fn = fn.whole
        elif isinstance(fn, GraphedGradient):
            out["cuda_graphs"] = fn.graphs
            if fn.failure is not None:
                out["cuda_graphs_off"] = f"{type(fn.failure).__name__}: {fn.failure}"[:300]
            fn = fn.inner
        elif isinstance(fn, FastGradient):
            out.update(
                path="fast",
                precision=fn.forward.precision,
                folded_batchnorms=fn.forward.folded,
                channels_last=fn.forward.channels_last,
            )
            fn = None
        elif isinstance(fn, EagerGradient):
            out.update(path="eager", precision="fp32")
            fn = None
        else:
            out["path"] = type(fn).__name__
            fn = None
    return out


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
    """Time the classic reference and dreamer's engine on each case, on `network`'s device.

    `on_progress` receives short notes ("frame512: reference 2/3") as the runs go.
    """
    from .config import DreamConfig
    from .loops.deepdream import dream, plan_octaves
    from .backend.gradients import make_gradient_fn
    from .objectives import build_objective

    device = network.device
    info = network.resolve(layer)
    node = info.node
    note = on_progress or (lambda _text: None)
    results = []
    for case in cases:
        images = _inputs(case, device, seed)
        config = DreamConfig(
            layers=(layer,), octaves=case.octaves, steps=case.steps, step_size=1.5, jitter=32,
            precision=precision, tile=tile, seed=seed,
        )
        plan = plan_octaves(case.size_hw, case.octaves, config.octave_scale, network.min_size)
        # the reference runs at batch 1: one image, timed, then scaled to the batch
        ref_frames = 1

        def reference() -> None:
            classic_dream(network, node, images[:1], plan.sizes, steps=case.steps, seed=seed)

        def ours() -> None:
            dream(images, network, config)

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
        objective = build_objective(network, config.layers)
        path = describe_path(
            make_gradient_fn(network, objective, precision=precision, tile=tile)
        )
        results.append(
            CaseResult(
                case, statistics.median(ref_runs), statistics.median(our_runs), ref_runs, our_runs,
                ref_peak, our_peak, ref_frames, path,
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
        f"{result.threads} threads, layer {result.layer}, weights {result.weights}, precision {result.precision}",
        f"median of {result.repeats} run(s) after {result.warmup} warm-up; ms per whole case (all octaves and steps)",
        "",
        "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head)),
    ]
    for row in rows:
        lines.append("  ".join(v.ljust(widths[0]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(row)))
    for n in dict.fromkeys(notes):
        lines.append(n)
    if result.memory_measure:
        lines.append(f"memory: {result.memory_measure}")
    for r in result.cases:
        if r.dreamer_path:
            desc = ", ".join(f"{k}={v}" for k, v in r.dreamer_path.items())
            lines.append(f"dreamer path ({r.case.name}): {desc}")
    return "\n".join(lines)
