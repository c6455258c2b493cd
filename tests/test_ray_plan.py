"""Scale-out without a cluster: how zoom videos are split into Ray units, where a unit taken over
after a worker died starts again, addresses, progress counting, and Ray missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from dreamer.config import DreamConfig
from dreamer.errors import UsageError
from dreamer.models.network import Network
from dreamer.scale.cluster import RayUnavailableError, parse_address, require_ray
from dreamer.scale.runner import (
    ClusterProgress, FrameDone, JobFailed, JobFinished, UnitStarted, WorkerLost, WorkerSpec,
)
from dreamer.scale.zoom import ZoomTask, partition, resume_point, zoom_units
from dreamer.zoom.feedback import ZoomConfig, ZoomVideo, zoom_frames
from dreamer.zoom.session import ZoomJob as SessionJob

A = DreamConfig(octaves=1, steps=1, layers=("mixed3b",))
B = DreamConfig(octaves=1, steps=1, layers=("mixed4a",))
C = DreamConfig(octaves=1, steps=1, layers=("mixed4c",))
D = DreamConfig(octaves=1, steps=1, layers=("mixed5a",))


def job(n: int, size=(48, 48), frames=4, dreams=(A,), cycle_every=50, done=0) -> ZoomTask:
    config = ZoomConfig(frames=frames, dreams=dreams, cycle_every=cycle_every)
    video = SessionJob(torch.zeros(1, 3, *size), f"/x/{n}.gif", config, seed=0, index=n, name=f"jobs.txt:{n + 1}")
    return ZoomTask(n, video, f"/x/{n}.gif.frames", "gif", done=done)


def batches_of(jobs, batch_size, done=None):
    """The batches of a single-process `zoom_frames` run, as sets of (job position, frame)."""
    sizes: dict = {}
    videos = [ZoomVideo(torch.zeros(1, 3, 2, 2 + sizes.setdefault(j.size, len(sizes))), j.config, seed=j.video.seed,
                        index=j.video.index, done=(done[i] if done else j.done)) for i, j in enumerate(jobs)]
    calls = [0]

    def dream(images, network, config, seeds=None):
        calls[0] += 1
        return images

    found: dict[int, set] = {}
    order = []
    for frame in zoom_frames(videos, Network.from_module(torch.nn.Identity()), batch_size=batch_size, dream=dream):
        order.append((frame.video, frame.index))
        if frame.index > 0:
            found.setdefault(calls[0], set()).add((frame.video, frame.index))
    return list(found.values()), order


# --- partition --------------------------------------------------------------------------------------


def test_same_size_and_settings_make_one_unit_other_sizes_their_own():
    jobs = [job(0), job(1, size=(40, 56)), job(2), job(3, size=(40, 56)), job(4, size=(64, 64))]
    assert partition(jobs) == [[0, 2], [1, 3], [4]]


def test_batch_size_splits_a_size_group_into_its_batches():
    jobs = [job(n) for n in range(5)]
    assert partition(jobs, 2) == [[0, 1], [2, 3], [4]]
    assert partition(jobs, 1) == [[n] for n in range(5)]
    units = zoom_units(jobs, batch_size=2)
    assert [u.job_ids for u in units] == [(0, 1), (2, 3), (4,)]
    assert units[0].cost == 2 * 4 * 48 * 48


def test_batches_that_shift_when_a_video_ends_join_their_units():
    # batch size 2: frames 1-2 batch (0,1) and (2,3); video 0 ends at frame 2, so from frame 3
    # the batches are (1,2) and (3): a unit of 0+1 alone would batch 1 differently than a single run
    jobs = [job(0, frames=3), job(1, frames=6), job(2, frames=6), job(3, frames=6)]
    assert partition(jobs, 2) == [[0, 1, 2, 3]]
    jobs = [job(0, frames=6), job(1, frames=6), job(2, frames=3), job(3, frames=3)]
    assert partition(jobs, 2) == [[0, 1], [2, 3]]  # the shorter pair ends together: no shift


def test_other_dream_settings_are_other_units_unless_a_cycle_stage_is_shared():
    jobs = [job(0, dreams=(A,)), job(1, dreams=(B,)), job(2, dreams=(C,))]
    assert partition(jobs) == [[0], [1], [2]]
    # 0 cycles A,B and 2 cycles D,B every 2 frames: they share batches at frames 3-4 only
    jobs = [job(0, frames=6, dreams=(A, B), cycle_every=2), job(1, frames=6, dreams=(C,)),
            job(2, frames=6, dreams=(D, B), cycle_every=2)]
    assert partition(jobs) == [[0, 2], [1]]


def test_finished_and_one_frame_videos_are_units_alone():
    jobs = [job(0, frames=1), job(1, frames=4, done=4), job(2)]
    assert partition(jobs) == [[0], [1], [2]]


@pytest.mark.parametrize("batch_size", [None, 1, 2, 3])
def test_units_batch_exactly_like_the_single_run(batch_size):
    """Every batch of a single-process run over all videos is a batch of one unit's own run."""
    rng = np.random.default_rng(batch_size or 0)
    jobs = [job(n, size=[(48, 48), (40, 56)][int(rng.integers(2))], frames=int(rng.integers(1, 8)),
                dreams=[(A,), (A, B), (B,)][int(rng.integers(3))], cycle_every=2) for n in range(9)]
    whole, _ = batches_of(jobs, batch_size)
    assert len(whole) > 5
    per_unit = []
    for group in partition(jobs, batch_size):
        found, _ = batches_of([jobs[i] for i in group], batch_size)
        per_unit += [{(group[v], f) for v, f in batch} for batch in found]
    assert sorted(map(sorted, per_unit)) == sorted(map(sorted, whole))


# --- resume_point -----------------------------------------------------------------------------------


def test_resume_point_examples():
    # a fresh run stopped mid-round (video 0 had written frame 3): back to the end of round 2
    assert resume_point([0, 0, 0], [4, 3, 3], [6, 6, 6]) == [3, 3, 3]
    # a finished short video stays finished
    assert resume_point([0, 0], [3, 4], [3, 6]) == [3, 4]
    # stopped while frame 0s were written: from the start
    assert resume_point([0, 0], [1, 0], [5, 5]) == [0, 0]
    # a unit that began resumed (3 and 5 done): one round complete, not two
    assert resume_point([3, 5], [5, 6], [10, 10]) == [4, 6]
    assert resume_point([0, 0], [5, 5], [5, 5]) == [5, 5]
    with pytest.raises(ValueError):
        resume_point([3, 0], [2, 4], [5, 5])


@pytest.mark.parametrize("batch_size", [None, 2])
def test_resuming_after_any_crash_repeats_the_uninterrupted_batches(batch_size):
    """Stop the run after each possible number of written frames; from `resume_point` on, the
    batches are batches of the uninterrupted run, and every frame not yet stored is made."""
    jobs = [job(0, frames=5), job(1, frames=7), job(2, frames=3), job(3, frames=7, dreams=(A, B), cycle_every=2)]
    start = [0, 2, 0, 1]
    jobs = [job(j.job, frames=j.frames, dreams=j.config.dreams, cycle_every=2, done=d) for j, d in zip(jobs, start)]
    whole, order = batches_of(jobs, batch_size)
    whole_sets = [frozenset(b) for b in whole]
    frames = [j.frames for j in jobs]
    for crash in range(len(order) + 1):
        stored = list(start)
        for video, index in order[:crash]:
            stored[video] = index + 1
        done = resume_point(start, stored, frames)
        assert all(s >= d for s, d in zip(stored, done))
        again, order2 = batches_of(jobs, batch_size, done=done)
        assert all(frozenset(b) in whole_sets for b in again), crash
        made = {(v, i) for v, i in order2}
        assert all((v, i) in made for v in range(len(jobs)) for i in range(stored[v], frames[v])), crash


# --- addresses, specs, Ray missing ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "address"), [
    (None, "local"), ("", "local"), ("local", "local"), ("auto", "auto"), ("10.0.0.5:6379", "10.0.0.5:6379"),
    ("head-node.lan:6379", "head-node.lan:6379"), ("ray://head:10001", "ray://head:10001"), ("[::1]:6379", "[::1]:6379"),
])
def test_parse_address(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["photo.jpg", "noise:48x48", "host:0", "host:99999", "host:", "a b:1"])
def test_a_source_taken_for_the_address_is_a_usage_error(text):
    with pytest.raises(UsageError, match="not a Ray address") as info:
        parse_address(text)
    assert "--ray local" in str(info.value)


def test_worker_spec_is_checked():
    from dreamer.errors import ConfigError

    with pytest.raises(ConfigError, match="device"):
        WorkerSpec("googlenet", device="cuda:1")
    with pytest.raises(ConfigError, match="cpus"):
        WorkerSpec("googlenet", cpus=0)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RayUnavailableError) as info:
        require_ray()
    assert "pip install 'dreamer[ray]'" in str(info.value) and info.value.exit_code == 1


def test_importing_the_scale_package_does_not_import_ray():
    import subprocess

    code = "import sys, dreamer.scale, dreamer.scale.runner, dreamer.scale.zoom, dreamer.scale.cluster\n" \
           "assert 'ray' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- progress -------------------------------------------------------------------------------------------


def test_progress_counts_each_frame_once_and_gives_rate_and_eta():
    now = [100.0]
    progress = ClusterProgress({0: (0, 10), 1: (4, 10)}, window=30, clock=lambda: now[0])
    assert progress.frames_total == 20 and progress.frames_done == 4 and progress.eta is None
    progress.apply(UnitStarted(0, 1, "host:1"))
    assert progress.apply(FrameDone(0, 0))  # the source: counted, but not in the rate
    for k in range(1, 5):
        now[0] += 1
        assert progress.apply(FrameDone(0, k))
    assert progress.frames_done == 9 and progress.made == 5
    assert not progress.apply(FrameDone(0, 2))  # a retried unit makes frame 2 again
    assert progress.made == 5
    assert progress.rate == pytest.approx(4 / 4)
    assert progress.eta == pytest.approx(11 / 1)
    assert progress.apply(JobFailed(1, "jobs.txt:2: bad", 1))
    assert progress.frames_total == 14 and not progress.apply(FrameDone(1, 5))
    assert progress.apply(JobFinished(0, "/x/0.gif")) and progress.frames_done == 14
    assert not progress.apply(JobFinished(0, "/x/0.gif"))
    assert progress.eta == 0.0
    now[0] += 60
    assert progress.rate == 0.0  # nothing in the last 30 s
    assert progress.apply(WorkerLost(0, 1, "host:1", "killed", True)) and progress.retries == 1


# --- the command line, before any cluster -----------------------------------------------------------------


def zoom_cli(*args: str):
    from click.testing import CliRunner

    from dreamer.cli import main

    return CliRunner().invoke(main, ["zoom", *args, "--weights", "random", "--steps", "1"])


def test_zoom_ray_without_ray_says_how_to_install_it_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    result = zoom_cli("noise:48x48", "--ray", "-o", str(tmp_path / "z.gif"))
    assert result.exit_code == 1, result.output
    assert "pip install 'dreamer[ray]'" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_zoom_ray_does_not_take_a_source_for_an_address(tmp_path):
    result = zoom_cli("--ray", str(tmp_path / "photo.jpg"))
    assert result.exit_code == 2, result.output
    assert "not a Ray address" in result.output and "--ray local" in result.output


def test_zoom_ray_refuses_a_numbered_device_and_leaves_nothing(tmp_path):
    pytest.importorskip("ray", reason="the option checks that Ray is installed first")
    result = zoom_cli("noise:48x48", "-o", str(tmp_path / "z.gif"), "--device", "cuda:1", "--ray")
    assert result.exit_code == 2, result.output
    assert "--device cuda:1 does not apply with --ray" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_address_where_nothing_answers_is_one_quick_error():
    ray = pytest.importorskip("ray", reason="Ray is not installed")
    from dreamer.scale.cluster import Cluster, ClusterError

    if ray.is_initialized():
        pytest.skip("this process is already connected to a cluster")
    with pytest.raises(ClusterError, match="cannot reach a Ray cluster at 127.0.0.1:1") as info:
        with Cluster("127.0.0.1:1"):
            pass
    assert "ray start --head" in str(info.value)
