"""`dreamer video --ray` on a real local Ray cluster (2 CPUs, one per module) with the random-weight
network: the same frames as without Ray, a worker killed mid-video replaced and its video
continued from the frame store with the same frames, a bad input failing alone."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dreamer[ray]')")

from dreamer.config import DreamConfig  # noqa: E402
from dreamer.io.video import read_frames  # noqa: E402
from dreamer.scale import WorkerPool, WorkerSpec, run_videos  # noqa: E402
from dreamer.scale.runner import UnitStarted, WorkerLost  # noqa: E402
from dreamer.video.frames import VideoConfig  # noqa: E402
from dreamer.video.session import VideoJob  # noqa: E402

from video_clips import moving_frames, write_clip  # noqa: E402

FRAMES = 6
# different sizes: a single-process run dreams them one by one, as the workers do (same-size
# videos would be one batch there, equal to one-by-one only up to float rounding)
SIZES = [(48, 48), (40, 56)]
FLAGS = ["--steps", "1", "--octaves", "1", "--weights", "random", "--layer", "mixed3b", "--seed", "3",
         "--device", "cpu", "--format", "frames"]


@pytest.fixture(scope="module")
def pool():
    """A local 2-CPU cluster and two loaded workers, shared by the module's tests."""
    monitor = os.environ.get("RAY_memory_monitor_refresh_ms")
    os.environ["RAY_memory_monitor_refresh_ms"] = "0"  # only the test that kills a worker may lose one
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers run this module's ExitAt
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


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    return [write_clip(folder / f"c{i}.mp4", moving_frames(FRAMES, h, w, seed=i), audio=False)
            for i, (h, w) in enumerate(SIZES)]


@contextlib.contextmanager
def one_thread():
    """CPU workers use one torch thread; a single-process run matches them bit for bit only with
    one thread too (torch's CPU kernels sum in an order that depends on the thread count)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def cli(pool, monkeypatch):
    """`dreamer video ...` with the module's cluster and workers for --ray."""
    import dreamer.scale
    from dreamer.cli import main

    @contextlib.contextmanager
    def shared(spec, **_):
        assert spec == pool.spec
        yield pool

    monkeypatch.setattr(dreamer.scale, "WorkerPool", shared)
    return lambda *args: CliRunner().invoke(main, ["video", *args, *FLAGS])


@pytest.fixture(scope="module")
def straight(clips, tmp_path_factory):
    """Both clips dreamed by `dreamer video` without Ray, in this process."""
    from dreamer.cli import main

    out = tmp_path_factory.mktemp("straight")
    with one_thread():
        result = CliRunner().invoke(main, ["video", *map(str, clips), "-o", f"{out}/", *FLAGS])
    assert result.exit_code == 0, result.output
    return [read_frames(out / f"c{i}.dream.frames") for i in range(len(clips))]


def assert_same(folder: Path, straight) -> None:
    for i, reference in enumerate(straight):
        got = read_frames(folder / f"c{i}.dream.frames")
        assert len(got) == len(reference) == FRAMES
        for k, (a, b) in enumerate(zip(got, reference)):
            np.testing.assert_array_equal(a, b, err_msg=f"video {i} frame {k}")


def test_two_videos_on_ray_equal_the_run_without_ray(cli, clips, straight, tmp_path):
    result = cli(*map(str, clips), "-o", f"{tmp_path}/", "--ray")
    assert result.exit_code == 0, result.output
    for i in range(len(clips)):
        assert str(tmp_path / f"c{i}.dream.frames") in result.output
    assert_same(tmp_path, straight)
    assert not list(tmp_path.glob("*.dream.frames.partial")) and not list(tmp_path.glob(".*lock"))


def test_controls_reach_the_workers(cli, clips, straight, tmp_path):
    """--keep-colors on Ray gives the frames it gives without Ray (and not the plain ones)."""
    from dreamer.cli import main

    with one_thread():
        result = CliRunner().invoke(main, ["video", str(clips[0]), "-o", f"{tmp_path}/here/", "--keep-colors", *FLAGS])
    assert result.exit_code == 0, result.output
    result = cli(str(clips[0]), "-o", f"{tmp_path}/ray/", "--keep-colors", "--ray")
    assert result.exit_code == 0, result.output
    here, there = read_frames(tmp_path / "here"), read_frames(tmp_path / "ray")  # one input: -o is its frames folder
    assert len(there) == FRAMES
    for k, (a, b) in enumerate(zip(there, here)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {k}")
    assert any(not np.array_equal(a, b) for a, b in zip(there, straight[0]))


class ExitAt:
    """Kills its worker process (as `kill -9` or a lost node would) after frame `frame` of job
    `job` is made, the first time; a marker file makes it happen once."""

    def __init__(self, job: int, frame: int, marker: str) -> None:
        self.job, self.frame, self.marker = job, frame, marker

    def __call__(self, job: int, frame: int) -> None:
        if (job, frame) == (self.job, self.frame) and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)


def test_a_killed_worker_is_replaced_and_its_video_continues_with_the_same_frames(pool, clips, straight, tmp_path):
    marker = tmp_path / "killed"
    out = tmp_path / "out"
    out.mkdir()
    config = VideoConfig(dream=DreamConfig(octaves=1, steps=1, layers=("mixed3b",), seed=3))
    events = []
    jobs = [VideoJob(clip, out / f"c{i}.dream.frames") for i, clip in enumerate(clips)]
    report = run_videos(jobs, pool, config, watch=ExitAt(1, 3, str(marker)), on_event=lambda e, p: events.append(e))
    assert marker.exists()
    assert [j.status for j in report.jobs] == ["finished"] * 2 and report.retries == 1
    lost = [e for e in events if isinstance(e, WorkerLost)]
    assert len(lost) == 1 and lost[0].retried
    resumed = [e for e in events if isinstance(e, UnitStarted) and e.attempt == 2]
    assert len(resumed) == 1 and resumed[0].done[0][0] == 1
    assert 1 <= resumed[0].done[0][1] <= 4  # from its frame store (frames up to 3 were made), not from 0
    assert_same(out, straight)


def test_a_bad_input_fails_alone(cli, clips, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    out = tmp_path / "out"
    result = cli(str(clips[0]), str(bad), str(clips[1]), "-o", f"{out}/", "--ray")
    assert result.exit_code == 1, result.output
    assert f"Error: {bad}:" in result.output and "1 of 3 videos failed" in result.output
    assert len(read_frames(out / "c0.dream.frames")) == FRAMES
    assert len(read_frames(out / "c1.dream.frames")) == FRAMES
    assert not (out / "bad.dream.frames").exists()


class HoldAfter:
    """A frame loop that, before the frames seeded `seeds`, waits until the file `marker`
    exists and then a moment more (a worker busy with a long frame while the driver is
    interrupted: the stop reaches it before the frame is done)."""

    def __init__(self, seeds: set[int], marker: str) -> None:
        self.seeds, self.marker = seeds, marker

    def __call__(self, images, network, config, seeds=None, **kwargs):
        import time

        from dreamer.loops import run_config

        if self.seeds & set(seeds or ()):
            waited = 0.0
            while not os.path.exists(self.marker) and waited < 60:
                time.sleep(0.02)
                waited += 0.02
            time.sleep(1.0)
        return run_config(images, network, config, seeds=seeds, **kwargs)


def test_ctrl_c_keeps_every_frame_and_resume_gives_the_same_videos(pool, clips, straight, tmp_path):
    from dreamer.scale import RunInterrupted
    from dreamer.scale.runner import FrameDone
    from dreamer.zoom.feedback import frame_seed

    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "interrupted"
    config = VideoConfig(dream=DreamConfig(octaves=1, steps=1, layers=("mixed3b",), seed=3))
    jobs = [VideoJob(clip, out / f"c{i}.dream.frames") for i, clip in enumerate(clips)]
    seen = set()

    def interrupt(event, progress):
        if isinstance(event, FrameDone) and event.frame == 1:
            seen.add(event.job)
        if seen == {0, 1} and not marker.exists():  # both wait before frame 2: interrupt once
            marker.touch()
            raise KeyboardInterrupt  # what Ctrl-C does to the driver

    held = HoldAfter({frame_seed(3, 0, 2), frame_seed(3, 1, 2)}, str(marker))
    with pytest.raises(RunInterrupted) as info:
        run_videos(jobs, pool, config, dream=held, on_event=interrupt)
    assert [j.status for j in info.value.report.jobs] == ["unfinished"] * 2
    from dreamer.scale.video import stored_frames

    kept = [stored_frames(job.output) for job in jobs]
    assert all(2 <= k < FRAMES for k in kept), kept  # the frames made so far, in their stores
    report = run_videos(jobs, pool, config, resume=True)
    assert [j.status for j in report.jobs] == ["finished"] * 2
    assert_same(out, straight)
