"""`--ray` on a real local Ray cluster (2 CPUs, one per module) with the random-weight network:
the same videos as without Ray, a killed worker's videos finished elsewhere from their frame
stores with the same frames, a bad job failing alone, Ctrl-C leaving resumable stores."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dreamer[ray]')")

from dreamer.config import DreamConfig  # noqa: E402
from dreamer.io.images import make_noise  # noqa: E402
from dreamer.io.video import FrameStore, read_frames  # noqa: E402
from dreamer.scale import RunInterrupted, WorkerPool, WorkerSpec, run_session  # noqa: E402
from dreamer.scale.runner import FrameDone, UnitStarted, WorkerLost  # noqa: E402
from dreamer.zoom.feedback import ZoomConfig, frame_seed  # noqa: E402
from dreamer.zoom.session import ZoomJob, ZoomSession  # noqa: E402

DREAM = DreamConfig(octaves=1, steps=1, layers=("mixed3b",))
SIZES = [(48, 48), (48, 48), (40, 56)]


@pytest.fixture(scope="module")
def pool():
    """A local 2-CPU cluster and two loaded workers, shared by the module's tests."""
    # Ray's memory monitor kills the newest workers when the machine (shared with other programs)
    # is short of memory: these tests count lost workers, so only the test that kills one may lose one
    monitor = os.environ.get("RAY_memory_monitor_refresh_ms")
    os.environ["RAY_memory_monitor_refresh_ms"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    # the workers must unpickle this module's stand-in dream functions without importing it
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    workers = WorkerPool(WorkerSpec("googlenet", "random:0", "cpu"))
    workers.start()  # they load the model while the reference videos are made
    try:
        yield workers
    finally:
        workers.close()
        ray.shutdown()
        if monitor is None:
            os.environ.pop("RAY_memory_monitor_refresh_ms", None)
        else:
            os.environ["RAY_memory_monitor_refresh_ms"] = monitor


def make_session(folder: Path, *, kind="frames", mode="new", frames=5) -> ZoomSession:
    jobs = []
    for i, (h, w) in enumerate(SIZES):
        config = ZoomConfig(frames=frames, dreams=(DREAM,), zoom=1.1, rotate=2.0)
        output = folder / (f"v{i}" if kind == "frames" else f"v{i}.{kind}")
        jobs.append(ZoomJob(make_noise((h, w), seed=frame_seed(3, i, 0), amplitude=0.1), output, config, seed=3,
                            index=i, fps=10.0, source=f"noise:{w}x{h}", name=f"jobs.txt:{i + 1}"))
    return ZoomSession(jobs, model="googlenet", weights="random:0", mode=mode)


@pytest.fixture(scope="module")
def straight(network, tmp_path_factory):
    """The three videos (8 frames) made in this process, as `dreamer zoom` without Ray makes
    them. Zoom and rotation are constant, so a 5-frame video is their first 5 frames."""
    folder = tmp_path_factory.mktemp("straight")
    with one_thread(), make_session(folder, frames=8) as session:
        session.run(network)
    return {i: read_frames(folder / f"v{i}") for i in range(3)}


@contextlib.contextmanager
def one_thread():
    """torch's CPU kernels sum in an order that depends on the thread count: a single-process
    run matches CPU workers (one thread each) bit for bit only with one thread too."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def assert_same(folder: Path, straight, *, frames=5, kind="frames"):
    """The videos in `folder` are the straight ones, frame for frame (a GIF: the GIF of them)."""
    from dreamer.io.video import encode

    for i, reference in straight.items():
        reference = reference[:frames]
        if kind != "frames":
            encode(reference, folder / f"reference{i}.{kind}", fps=10.0)
            reference = read_frames(folder / f"reference{i}.{kind}")
        got = read_frames(folder / (f"v{i}" if kind == "frames" else f"v{i}.{kind}"))
        assert len(got) == len(reference) == frames
        for k, (a, b) in enumerate(zip(got, reference)):
            np.testing.assert_array_equal(a, b, err_msg=f"video {i} frame {k}")


class ExitAt:
    """A dream that kills its worker process (as `kill -9` or a lost node would) the first time
    it is asked for the frame seeded `seed`; a marker file makes it happen once."""

    def __init__(self, seed: int, marker: str) -> None:
        self.seed, self.marker = seed, marker

    def __call__(self, images, network, config, seeds=None, **kwargs):
        from dreamer.loops import run_config

        if self.seed in seeds and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return run_config(images, network, config, seeds=seeds, **kwargs)


class HoldUntil:
    """A dream that waits, before the frames seeded `seeds`, until the file `marker` exists
    (a worker busy with a long frame while the driver is interrupted)."""

    def __init__(self, seeds: set[int], marker: str) -> None:
        self.seeds, self.marker = seeds, marker

    def __call__(self, images, network, config, seeds=None, **kwargs):
        from dreamer.loops import run_config

        waited = 0.0
        while self.seeds & set(seeds) and not os.path.exists(self.marker) and waited < 60:
            time.sleep(0.02)
            waited += 0.02
        return run_config(images, network, config, seeds=seeds, **kwargs)


def test_cluster_makes_the_same_frames(pool, tmp_path, straight):
    events = []
    with make_session(tmp_path) as session:
        report = run_session(session, pool, on_event=lambda e, p: events.append(e))
    assert [j.status for j in report.jobs] == ["finished"] * 3 and report.workers >= 1
    assert_same(tmp_path, straight)
    started = [e for e in events if isinstance(e, UnitStarted)]
    assert sorted(e.done for e in started) == [((0, 0), (1, 0)), ((2, 0),)]  # one unit per batch group


@pytest.fixture
def cli(pool, monkeypatch):
    """`dreamer zoom ... --ray` on the module's cluster and workers (each call would otherwise
    load the model on new workers)."""
    import dreamer.scale
    from dreamer.cli import main

    @contextlib.contextmanager
    def shared(spec, **_):
        assert spec == pool.spec
        yield pool

    monkeypatch.setattr(dreamer.scale, "WorkerPool", shared)

    def run(*args: str):
        extra = ["--steps", "1", "--octaves", "1", "--weights", "random", "--layer", "mixed3b", "--seed", "3"]
        return CliRunner().invoke(main, ["zoom", *args, *extra])

    return run


def write_jobs(folder: Path, lines: list[str]) -> Path:
    jobs = folder / "jobs.txt"
    jobs.write_text("".join(line + "\n" for line in lines))
    return jobs


JOBS = ["noise:48x48 - a frames=4", "noise:48x48 - b frames=4 zoom=1.1", "noise:56x40 - c frames=3 rotate=2"]


def test_jobs_file_on_ray_matches_the_run_without_ray(cli, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "ray").mkdir()
    with one_thread():
        plain = cli("--jobs", str(write_jobs(tmp_path / "plain", JOBS)), "--device", "cpu")
    assert plain.exit_code == 0, plain.output
    done = cli("--jobs", str(write_jobs(tmp_path / "ray", JOBS)), "--device", "cpu", "--ray")
    assert done.exit_code == 0, done.output
    for name in "abc":
        assert str(tmp_path / "ray" / name) in done.output
        a, b = read_frames(tmp_path / "plain" / name), read_frames(tmp_path / "ray" / name)
        assert len(a) == len(b) == (3 if name == "c" else 4)
        for k, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_array_equal(x, y, err_msg=f"{name} frame {k}")


def test_a_bad_job_fails_alone_with_its_line(cli, tmp_path):
    jobs = write_jobs(tmp_path, [JOBS[0], "noise:20x20 - tiny.gif frames=3", JOBS[2]])
    result = cli("--jobs", str(jobs), "--device", "cpu", "--ray")
    assert result.exit_code == 1, result.output
    assert f"{jobs}:2:" in result.output and "1 of 3 videos failed" in result.output
    assert len(read_frames(tmp_path / "a")) == 4 and len(read_frames(tmp_path / "c")) == 3
    assert not (tmp_path / "tiny.gif").exists() and not (tmp_path / "tiny.gif.frames").exists()


def test_ctrl_c_stops_the_workers_between_rounds_and_resume_makes_the_same_videos(pool, tmp_path, straight):
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "interrupted"
    seen = set()

    def interrupt(event, progress):
        if isinstance(event, FrameDone) and event.frame == 2:
            seen.add(event.job)
        if {0, 2} <= seen and not marker.exists():  # both units wait before frame 3: interrupt once
            marker.touch()
            raise KeyboardInterrupt  # what Ctrl-C does to the driver

    held = HoldUntil({frame_seed(3, 0, 3), frame_seed(3, 2, 3)}, str(marker))
    with pytest.raises(RunInterrupted) as info, make_session(out, kind="gif", frames=8) as session:
        run_session(session, pool, dream=held, on_event=interrupt)
    assert [j.status for j in info.value.report.jobs] == ["unfinished"] * 3
    assert info.value.report.retries == 0  # stopped, not killed
    counts = [FrameStore(out / f"v{i}.gif.frames").count() for i in range(3)]
    assert counts[0] == counts[1] and all(3 < c < 8 for c in counts)  # each unit ended on a whole round
    for i in range(3):  # a playable partial video of the frames so far; no output yet
        assert len(read_frames(out / f"v{i}.partial.gif")) == counts[i]
        assert not (out / f"v{i}.gif").exists()
    with make_session(out, kind="gif", mode="resume", frames=8) as session:
        assert [v.done for v in session.videos] == counts
        report = run_session(session, pool)
    assert [j.status for j in report.jobs] == ["finished"] * 3
    assert not any((out / f"v{i}.partial.gif").exists() for i in range(3))
    assert_same(out, straight, frames=8, kind="gif")


def test_a_killed_worker_is_replaced_and_the_frames_are_the_same(pool, tmp_path, straight):
    marker = tmp_path / "killed"
    (tmp_path / "out").mkdir()
    events = []
    with make_session(tmp_path / "out") as session:
        report = run_session(session, pool, dream=ExitAt(frame_seed(3, 1, 3), str(marker)),
                             on_event=lambda e, p: events.append(e))
    assert marker.exists()
    assert [j.status for j in report.jobs] == ["finished"] * 3 and report.retries == 1
    lost = [e for e in events if isinstance(e, WorkerLost)]
    assert len(lost) == 1 and lost[0].retried
    resumed = [e for e in events if isinstance(e, UnitStarted) and e.attempt == 2]
    assert len(resumed) == 1 and resumed[0].done == ((0, 3), (1, 3))  # from the stores, not from frame 0
    assert_same(tmp_path / "out", straight)


