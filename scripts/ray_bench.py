"""Zoom jobs per second with Ray against the single-process run, on this machine.

    python scripts/ray_bench.py                      # 8 jobs of 128x128, 10 frames, batches of 4
    python scripts/ray_bench.py --jobs 16 --size 256 --frames 20 --workers 2 --json ray.json

Four measurements of the same jobs file (noise sources, random weights, the zoom defaults of
1 octave x 5 steps, on the CPU):

1. ``dreamer zoom --jobs FILE --batch B`` in a subprocess: the single-process run, end to end
   (Python start, model load, frames, encoding), with torch's default threads and with one.
2. ``dreamer zoom --jobs FILE --batch B --ray`` in a subprocess: the same with a local Ray
   cluster (one worker of one thread per CPU), end to end (cluster start, model loads).
3. Warm, in this process: the session's own run on a loaded network (frames and files only),
   with the default threads and with one.
4. Warm, in this process: the same session on an already running cluster of `--workers` CPUs
   whose workers have loaded the model (`run_session`): a long batch's cost once started.

torch's CPU kernels sum in an order that depends on the thread count, so the Ray run's frames
are compared (they must be identical) with the one-thread single process. The load average is
reported before and after: on a shared machine, a comparison is only as good as its quiet.
Timings are wall-clock seconds of one run each; repeat the script to see the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _jobs_file(folder: Path, jobs: int, size: int, frames: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"noise:{size}x{size} - v{n:03d} frames={frames} seed={n}" for n in range(jobs)]
    path = folder / "jobs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(args: list[str], threads: int | None = None) -> float:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dreamer", "zoom", *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"dreamer zoom {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def _same(a: Path, b: Path, jobs: int) -> bool:
    from dreamer.io.video import read_frames

    import numpy as np

    for n in range(jobs):
        x, y = read_frames(a / f"v{n:03d}"), read_frames(b / f"v{n:03d}")
        if len(x) != len(y) or not all(np.array_equal(p, q) for p, q in zip(x, y)):
            return False
    return True


def _session(folder: Path, jobs: int, size: int, frames: int, model: str):
    from dreamer.io.images import make_noise
    from dreamer.zoom.feedback import LIGHT_DREAM, ZoomConfig, frame_seed
    from dreamer.zoom.session import ZoomJob, ZoomSession

    folder.mkdir(parents=True, exist_ok=True)
    dream = LIGHT_DREAM.replace(model=model)
    videos = [ZoomJob(make_noise((size, size), seed=frame_seed(n, n, 0)), folder / f"v{n:03d}",
                      ZoomConfig(frames=frames, dreams=(dream,)), seed=n, index=n, name=f"job {n}")
              for n in range(jobs)]
    return ZoomSession(videos, model=model, weights="random:0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="videos in the jobs file [8]")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels [128]")
    parser.add_argument("--frames", type=int, default=10, help="frames per video [10]")
    parser.add_argument("--batch", type=int, default=4, help="--batch of both runs [4]")
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray cluster (one worker each) [2]")
    parser.add_argument("--model", default="googlenet")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dreamer-ray-bench-"))
    load_before = os.getloadavg()
    flags = ["--batch", str(args.batch), "--weights", "random", "--device", "cpu", "-q", "--model", args.model]
    try:
        plain_s = _cli(["--jobs", str(_jobs_file(tmp / "plain", args.jobs, args.size, args.frames)), *flags])
        one_s = _cli(["--jobs", str(_jobs_file(tmp / "one", args.jobs, args.size, args.frames)), *flags], threads=1)
        ray_s = _cli_ray(_jobs_file(tmp / "ray", args.jobs, args.size, args.frames), flags, args.workers)
        identical = _same(tmp / "one", tmp / "ray", args.jobs)

        import torch

        from dreamer.models import load_model
        from dreamer.scale import Cluster, WorkerPool, WorkerSpec, run_session

        network = load_model(args.model, weights="random:0", device="cpu")
        with _session(tmp / "warm-warmup", 1, args.size, 2, args.model) as session:
            session.run(network)
        threads = torch.get_num_threads()
        warm_plain = {}
        for n in (threads, 1):
            torch.set_num_threads(n)
            with _session(tmp / f"warm-plain-{n}", args.jobs, args.size, args.frames, args.model) as session:
                start = time.perf_counter()
                session.run(network, batch_size=args.batch)
                warm_plain[n] = time.perf_counter() - start
        torch.set_num_threads(threads)
        with Cluster("local", num_cpus=args.workers), WorkerPool(WorkerSpec(args.model, "random:0", "cpu")) as pool:
            with _session(tmp / "warm-ray-warmup", args.workers, args.size, 2, args.model) as session:
                run_session(session, pool, batch_size=1)  # every worker loads the model
            with _session(tmp / "warm-ray", args.jobs, args.size, args.frames, args.model) as session:
                start = time.perf_counter()
                report = run_session(session, pool, batch_size=args.batch)
                warm_ray_s = time.perf_counter() - start
            workers_used = report.workers
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        (f"single process, {threads} threads, end to end", plain_s),
        ("single process, 1 thread, end to end", one_s),
        (f"Ray (local cluster, {os.cpu_count()} CPUs), end to end", ray_s),
        (f"single process, {threads} threads, warm", warm_plain[threads]),
        ("single process, 1 thread, warm", warm_plain[1]),
        (f"Ray, warm ({workers_used} workers x 1 thread)", warm_ray_s),
    ]
    print(f"{args.jobs} zoom jobs of {args.size}x{args.size}, {args.frames} frames, 1 octave x 5 steps, "
          f"--batch {args.batch}, random weights, CPU ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads in this process)")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"{'run':<44} {'seconds':>8} {'jobs/s':>8} {'vs first':>10}")
    bases = (plain_s, plain_s, plain_s, warm_plain[threads], warm_plain[threads], warm_plain[threads])
    for (name, seconds), base in zip(rows, bases):
        print(f"{name:<44} {seconds:8.1f} {args.jobs / seconds:8.3f} {base / seconds:9.2f}x")
    print(f"frames of Ray and of the 1-thread single process identical: {identical}")
    if args.json:
        args.json.write_text(json.dumps({
            "jobs": args.jobs, "size": args.size, "frames": args.frames, "batch": args.batch,
            "workers": args.workers, "model": args.model, "cpus": os.cpu_count(),
            "load_before": load_before, "load_after": load_after, "identical": identical,
            "seconds": dict(rows), "date": time.strftime("%Y-%m-%d %H:%M"),
        }, indent=2) + "\n")


def _cli_ray(jobs: Path, flags: list[str], workers: int) -> float:
    """`dreamer zoom --ray`: its local cluster takes all of the machine's CPUs (one worker each)."""
    if os.cpu_count() != workers:
        print(f"note: --ray starts a local cluster of all {os.cpu_count()} CPUs; the end-to-end Ray run uses "
              f"{os.cpu_count()} workers, the warm one {workers}", file=sys.stderr)
    return _cli(["--jobs", str(jobs), *flags, "--ray"])


if __name__ == "__main__":
    main()
