"""GPU checks of the fast path and tiling, for a session that has a CUDA machine.

Run through scripts/gpu_check.sh (which also runs the full `dreamer bench`). Prints one line
per check and writes gpu_check.json to --out. Not run by CI (needs CUDA).
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
    from dreamer.backend import fast, tiling
    from dreamer.bench import describe_path
    from dreamer.config import DreamConfig
    from dreamer.loops.deepdream import dream
    from dreamer.backend.gradients import EagerGradient, make_gradient_fn
    from dreamer.models import load_model
    from dreamer.objectives import build_objective

    report: dict = {"device": torch.cuda.get_device_name(dev) if on_gpu else str(dev), "torch": torch.__version__,
                    "bf16": torch.cuda.is_bf16_supported() if on_gpu else None}
    failures = []

    def check(name: str, ok: bool, **info) -> None:
        report[name] = {"ok": bool(ok), **info}
        print(f"{'PASS' if ok else 'FAIL'} {name} {info}", flush=True)
        if not ok:
            failures.append(name)

    net = load_model("googlenet", weights="random:0", device=dev)
    obj = build_objective(net, DreamConfig().layers)  # what dream() builds: mixed4c
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16, generator=g), size=(size(512), size(512)), mode="bilinear").to(dev)
    ref = EagerGradient(net.extractor(obj.nodes), obj)

    # 1. bf16 / fp16 objective after one step within 1% of fp32 on the same input
    cfg = DreamConfig(octaves=1, steps=1, jitter=0)
    exact = float(ref(dream(img, net, cfg.replace(precision="fp32")))[1])
    for p in ("bf16", "fp16", "auto"):
        got = float(ref(dream(img, net, cfg.replace(precision=p)))[1])
        check(f"objective_{p}_within_1pct", abs(got / exact - 1) < 0.01, ratio=got / exact)

    # 2. CUDA graphs are captured and replay what eager computes
    fn = make_gradient_fn(net, obj, precision="auto")
    dream(img, net, DreamConfig(octaves=2, steps=3))
    path = describe_path(fn)
    check("cuda_graphs_captured", not on_gpu or (path.get("cuda_graphs", 0) >= 1 and "cuda_graphs_off" not in path), path=path)
    inner = fast.FastGradient(fast.prepare_forward(net, obj.nodes, fast.resolve_precision("auto", dev)), obj)
    x = torch.roll(img, 7, dims=3)
    want, _ = inner(x)
    got, _ = fn(x)
    rel = float((got - want).abs().max() / want.abs().max())
    check("graph_replay_matches_eager", rel < 2e-2, rel=rel)

    # 3. tiled == untiled on the GPU (fp32 exact path and the bf16 fast path)
    big = torch.nn.functional.interpolate(img, size=(size(768), size(1024)), mode="bilinear")
    for p, tol in (("fp32", 1e-4), ("bf16", 3e-2)):
        want, _ = make_gradient_fn(net, obj, precision=p)(big)
        tiled = make_gradient_fn(net, obj, precision=p, tile=size(256))
        got, _ = tiled(big)
        rel = float((got - want).abs().max() / want.abs().max())
        check(f"tiled_equals_untiled_{p}", rel < tol and tiled.last_tiles > 1, rel=rel, tiles=tiled.last_tiles)

    # 4. an 8K still, 4 octaves x 1 step: fits the budget by tiling, no crash; peak memory
    fast.clear_cache()
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    huge = torch.rand(1, 3, size(4320), size(7680), generator=g)
    t0 = time.perf_counter()
    out = dream(huge, net, DreamConfig(octaves=4, steps=1, tile=None if on_gpu else size(1024)))
    peak = 0
    if on_gpu:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated(dev)
    fn = make_gradient_fn(net, obj, precision="auto", tile=None if on_gpu else size(1024))
    check("dream_8k_within_budget", out.shape == huge.shape and peak <= tiling.DEFAULT_BUDGET + 2 * 2**30,
          peak_gib=peak / 2**30, seconds=time.perf_counter() - t0, tiles=describe_path(fn).get("tiles_last_call"))

    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print("failed:", failures if failures else "none")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
