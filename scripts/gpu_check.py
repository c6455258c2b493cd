"""GPU checks of the gradient backend (dreamer.backend.PreparedNetwork) and both loops, for a
session that has a CUDA machine.

Run through scripts/gpu_check.sh (which also runs the CUDA tests and the full `dreamer bench`).
Prints one line per check and writes gpu_check.json to --out. Not run by CI (needs CUDA);
``--device cpu --scale 0.15`` is a dry run of this script's own logic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of this script's own logic")
    ap.add_argument("--scale", type=float, default=1.0, help="image sizes x this (dry runs)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    on_gpu = dev.type == "cuda"

    def size(n: int) -> int:
        return max(64, round(n * args.scale))

    from dreamer.backend import PreparedNetwork, tiling
    from dreamer.config import DreamConfig
    from dreamer.errors import ConfigError
    from dreamer.loops import dream, render
    from dreamer.models import load_model
    from dreamer.objectives import Objective, build_objective

    report: dict = {"device": torch.cuda.get_device_name(dev) if on_gpu else str(dev), "torch": torch.__version__,
                    "bf16": torch.cuda.is_bf16_supported() if on_gpu else None}
    failures = []

    def check(name: str, ok: bool, **info) -> None:
        report[name] = {"ok": bool(ok), **info}
        print(f"{'PASS' if ok else 'FAIL'} {name} {info}", flush=True)
        if not ok:
            failures.append(name)

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max() / b.abs().max())

    net = load_model("googlenet", weights="random:0", device=dev)
    obj = build_objective(net, DreamConfig().layers)  # what dream() builds: mixed4c
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16, generator=g), size=(size(512), size(512)), mode="bilinear").to(dev)
    exact = PreparedNetwork(net)

    def score(x: torch.Tensor) -> float:
        return float(exact.gradient(x, obj, precision="fp32")[1])

    # 1. the classic loop: bf16 / fp16 / auto objective after one step within 1% of fp32
    cfg = DreamConfig(octaves=1, steps=1, jitter=0)
    reference = score(dream(img, net, cfg.replace(precision="fp32")))
    for p in ("bf16", "fp16", "auto"):
        got = score(dream(img, net, cfg.replace(precision=p)))
        check(f"dream_objective_{p}_within_1pct", abs(got / reference - 1) < 0.01, ratio=got / reference)

    # 2. CUDA graphs are captured (also through standard transforms, which run outside the
    #    backend) and replay what the eager exact path computes
    prepared = PreparedNetwork(net)
    dream(img, prepared, DreamConfig(octaves=2, steps=3, transforms="standard"))
    path = dict(prepared.last)
    check("cuda_graphs_captured", not on_gpu or (path.get("cuda_graphs", 0) >= 1 and "cuda_graphs_off" not in path), path=path)
    x = torch.roll(img, 7, dims=3)
    want, _ = exact.gradient(x, obj, precision="fp32")
    for p, tol in (("fp32", 1e-3), ("auto", 3e-2)):
        got, _ = prepared.gradient(x, obj, precision=p)
        got, _ = prepared.gradient(x, obj, precision=p)  # the replay
        check(f"graph_replay_matches_exact_{p}", rel(got, want) < tol, rel=rel(got, want), path=dict(prepared.last))

    # 3. the render loop on the backend: its gradient (the class logit through the whole
    #    network) matches the exact one, graphs are captured also through the standard
    #    transforms, and a fast render grows the class about as much as an fp32 one (Adam
    #    amplifies rounding differences in small gradient components, so the pictures drift
    #    apart step by step; both must still grow the class)
    noise = (0.5 + 0.01 * (2 * torch.rand(1, 3, size(384), size(384), generator=g) - 1)).to(dev)
    rcfg = DreamConfig(layers=(), classes=("banana",), param="fft", transforms="standard", jitter=16, steps=8)
    logits = build_objective(net, (), rcfg.classes)
    rendered = PreparedNetwork(net)
    want, _ = exact.gradient(noise, logits, precision="fp32")
    for _ in range(2):  # capture, then replay
        got, _ = rendered.gradient(noise, logits)
    check("render_gradient_matches_exact", rel(got, want) < 3e-2, rel=rel(got, want), path=dict(rendered.last))
    slow = render(noise, net, rcfg.replace(precision="fp32"))
    fast = render(noise, rendered, rcfg)
    s_slow = float(exact.gradient(slow, logits, precision="fp32")[1])
    s_fast = float(exact.gradient(fast, logits, precision="fp32")[1])
    s_start = float(exact.gradient(noise, logits, precision="fp32")[1])
    check("render_fast_path_grows_the_class",
          s_fast - s_start > 0.5 * (s_slow - s_start) > 0 and rendered.last["path"] == "fast"
          and (not on_gpu or (rendered.last.get("cuda_graphs", 0) >= 1 and "cuda_graphs_off" not in rendered.last)),
          start=s_start, fp32=s_slow, fast=s_fast, path=dict(rendered.last))

    # 4. tiled == untiled on the GPU (fp32 exact path and the bf16 fast path); never for an
    #    objective that is not a mean over positions
    big = torch.nn.functional.interpolate(img, size=(size(768), size(1024)), mode="bilinear")
    for p, tol in (("fp32", 1e-4), ("bf16", 3e-2)):
        want, _ = PreparedNetwork(net).gradient(big, obj, precision=p)
        tiled = PreparedNetwork(net)
        got, _ = tiled.gradient(big, obj, precision=p, tile=size(256))
        check(f"tiled_equals_untiled_{p}", rel(got, want) < tol and tiled.last["tiles"] > 1,
              rel=rel(got, want), tiles=tiled.last["tiles"])
    peak = Objective(lambda acts: acts["inception4c"].amax((1, 2, 3)), ["inception4c"], "max")
    try:
        PreparedNetwork(net).gradient(big, peak, tile=size(256))
        refused = False
    except ConfigError:
        refused = True
    check("untileable_objective_refuses_tiles", refused)

    # 5. an 8K still, 4 octaves x 1 step: fits the budget by tiling, no crash; peak memory
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    huge = torch.rand(1, 3, size(4320), size(7680), generator=g)
    still = PreparedNetwork(net)
    t0 = time.perf_counter()
    out = dream(huge, still, DreamConfig(octaves=4, steps=1, tile=None if on_gpu else size(1024)))
    used = 0
    if on_gpu:
        torch.cuda.synchronize()
        used = torch.cuda.max_memory_allocated(dev)
    check("dream_8k_within_budget", out.shape == huge.shape and used <= tiling.DEFAULT_BUDGET + 2 * 2**30,
          peak_gib=used / 2**30, seconds=time.perf_counter() - t0, path=dict(still.last))

    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print("failed:", failures if failures else "none")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
