"""Zoom units as a worker runs them, here in this process (no cluster): the same frames as a
single-process run, taken over after a crash from the frame stores, stopped between rounds,
tidied after a kill, one video's failure kept to that video."""

from __future__ import annotations

import numpy as np
import pytest

from dreamer.config import DreamConfig
from dreamer.errors import OutputError
from dreamer.io.images import make_noise
from dreamer.io.video import FrameStore, read_frames
from dreamer.scale.runner import FrameDone, JobFailed, JobFinished, UnitStarted
from dreamer.scale.zoom import ZoomJob, zoom_units
from dreamer.zoom.feedback import ZoomConfig, ZoomVideo, frame_seed, frame_to_tensor, quantize, zoom_frames

DREAM = DreamConfig(octaves=1, steps=1, layers=("mixed3b",))
SIZES = [(48, 48), (48, 48), (40, 56)]


class Crash(BaseException):
    """Stands for the worker process dying: nothing in the unit catches it."""


def make_jobs(tmp_path, frames=5, kind="frames", done=None, tag="v"):
    jobs = []
    for i, size in enumerate(SIZES):
        config = ZoomConfig(frames=frames, dreams=(DREAM,), zoom=1.1, rotate=2.0)
        start = quantize(make_noise(size, seed=frame_seed(3, i, 0), amplitude=0.1))
        output = tmp_path / (f"{tag}{i}" if kind == "frames" else f"{tag}{i}.gif")
        store = output if kind == "frames" else output.with_name(output.name + ".frames")
        store.mkdir(exist_ok=True)
        FrameStore(store).write_manifest({"format": "dreamer zoom test"})  # a store dreamer made
        jobs.append(ZoomJob(job=i, where=f"jobs.txt:{i + 1}", output=str(output), store=str(store), kind=kind,
                            config=config, seed=3, index=i, size=size, fps=10.0, start=start,
                            done=done[i] if done else 0, source=f"noise:{size[1]}x{size[0]}"))
    return jobs


@pytest.fixture(scope="module")
def straight(network):
    """Each video's frames from one single-process `zoom_frames` over all three."""
    videos = [ZoomVideo(frame_to_tensor(j.start), j.config, seed=j.seed, index=j.index)
              for j in make_jobs_for_reference()]
    frames: dict[int, list[np.ndarray]] = {}
    for frame in zoom_frames(videos, network):
        frames.setdefault(frame.video, []).append(frame.image)
    return frames


def make_jobs_for_reference():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        return make_jobs(Path(tmp))


def run_all(units, network, stopping=lambda: False):
    events = []
    results = [unit.run(network, events.append, stopping) for unit in units]
    return results, events


def assert_same(jobs, straight, frames=5):
    for job in jobs:
        got = read_frames(job.output)
        assert len(got) == frames
        for k, (a, b) in enumerate(zip(got, straight[job.job])):
            np.testing.assert_array_equal(a, b, err_msg=f"video {job.job} frame {k}")


def test_units_make_the_single_process_frames(tmp_path, network, straight):
    jobs = make_jobs(tmp_path)
    units = zoom_units(jobs)
    assert [u.job_ids for u in units] == [(0, 1), (2,)]
    results, events = run_all(units, network)
    assert [sorted(r.finished) for r in results] == [[0, 1], [2]] and not any(r.failed for r in results)
    assert_same(jobs, straight)
    assert sum(isinstance(e, FrameDone) for e in events) == 15
    assert {e.job for e in events if isinstance(e, JobFinished)} == {0, 1, 2}
    assert [e.done for e in events if isinstance(e, UnitStarted)] == [((0, 0), (1, 0)), ((2, 0),)]


def test_a_unit_run_again_after_a_crash_resumes_from_its_stores(tmp_path, network, straight):
    from dreamer.loops import run_config

    jobs = make_jobs(tmp_path)
    crash_seed = frame_seed(3, 1, 3)  # while dreaming frame 3 of video 1 (batched with video 0)
    calls, crashed = [], []

    def dream(images, net, config, seeds=None, **kwargs):
        calls.append(list(seeds))
        if crash_seed in seeds and not crashed:
            crashed.append(1)
            raise Crash
        return run_config(images, net, config, seeds=seeds, **kwargs)

    (unit, _) = zoom_units(jobs, dream=dream)
    with pytest.raises(Crash):
        unit.run(network, lambda e: None, lambda: False)
    assert [FrameStore(j.store).count() for j in jobs[:2]] == [3, 3]
    calls.clear()
    events = []
    result = unit.run(network, events.append, lambda: False)
    assert sorted(result.finished) == [0, 1]
    assert events[0] == UnitStarted(unit.number, done=((0, 3), (1, 3)))  # not from the start
    assert len(calls) == 2  # frames 3 and 4, as batches of two
    assert_same(jobs[:2], straight)


def test_a_crash_between_two_writes_of_a_batch_rolls_back_one_frame(tmp_path, network, straight):
    jobs = make_jobs(tmp_path)
    (unit, _) = zoom_units(jobs)
    real = FrameStore.write
    writes = []

    def write(self, index, *args, **kwargs):
        writes.append(index)
        if len(writes) == 7:  # frames 0-2 of both videos, then frame 3 of video 0 only
            raise Crash
        return real(self, index, *args, **kwargs)

    FrameStore.write = write
    try:
        with pytest.raises(Crash):
            unit.run(network, lambda e: None, lambda: False)
    finally:
        FrameStore.write = real
    assert [FrameStore(j.store).count() for j in jobs[:2]] == [3, 3]
    real(FrameStore(jobs[0].store), 3, straight[0][3])  # as if the crash came after video 0's write
    events = []
    unit.run(network, events.append, lambda: False)
    assert events[0].done == ((0, 3), (1, 3))  # video 0's frame 3 is made again, in its batch
    assert_same(jobs[:2], straight)


def test_abandon_trims_to_the_last_whole_round(tmp_path, network, straight):
    jobs = make_jobs(tmp_path)
    (unit, _) = zoom_units(jobs)
    for k in range(4):
        FrameStore(jobs[0].store).write(k, straight[0][k])
    for k in range(3):
        FrameStore(jobs[1].store).write(k, straight[1][k])
    unit.abandon()
    assert [FrameStore(j.store).count() for j in jobs[:2]] == [3, 3]


def test_stopping_ends_between_rounds_and_a_resume_is_exact(tmp_path, network, straight):
    jobs = make_jobs(tmp_path)
    asked = []

    def stopping():
        asked.append(1)
        return len(asked) >= 3  # at the start, after the frame 0s, then after round 1

    results, _ = run_all(zoom_units(jobs), network, stopping)
    assert all(r.stopped for r in results) and not any(r.finished for r in results)
    counts = [FrameStore(j.store).count() for j in jobs]
    assert counts[0] == counts[1] and 1 < counts[0] < 5
    resumed = [_from_store(j) for j in make_jobs(tmp_path, done=counts)]
    results, _ = run_all(zoom_units(resumed), network)
    assert sorted(j for r in results for j in r.finished) == [0, 1, 2]
    assert_same(jobs, straight)


def _from_store(job: ZoomJob) -> ZoomJob:
    """The job as a resumed run sets it up: no start frame when frames are done."""
    from dataclasses import replace

    return replace(job, start=None) if job.done else job


def test_one_videos_write_error_fails_it_alone_and_keeps_the_others_exact(tmp_path, network, straight):
    jobs = make_jobs(tmp_path, kind="gif")
    real = FrameStore.write

    def write(self, index, *args, **kwargs):
        if self.folder.name.startswith("v1") and index == 2:
            raise OutputError(f"cannot write frame {index}: disk full")
        return real(self, index, *args, **kwargs)

    FrameStore.write = write
    try:
        events = []
        results = [unit.run(network, events.append, lambda: False) for unit in zoom_units(jobs)]
    finally:
        FrameStore.write = real
    assert results[0].failed == {1: ("jobs.txt:2: cannot write frame 2: disk full", 1)}
    assert sorted(results[0].finished) == [0] and sorted(results[1].finished) == [2]
    assert JobFailed(1, "jobs.txt:2: cannot write frame 2: disk full", 1) in events
    for job in (jobs[0], jobs[2]):  # encoded; the store stays until the driver settles the unit
        assert len(read_frames(job.output)) == 5
        for k, frame in enumerate(read_frames(job.store)):
            np.testing.assert_array_equal(frame, straight[job.job][k])
    units = zoom_units(jobs)
    units[0].settle(results[0])
    assert not FrameStore(jobs[0].store).folder.exists() or FrameStore(jobs[0].store).count() == 0
    assert FrameStore(jobs[1].store).count() == 2  # the failed video keeps its frames


def test_a_store_no_worker_can_see_fails_its_unit_with_the_reason(tmp_path, network):
    jobs = make_jobs(tmp_path)
    import shutil

    shutil.rmtree(jobs[2].store)  # as a worker on a node without the shared folder sees it
    results, _ = run_all(zoom_units(jobs), network)
    assert sorted(results[0].finished) == [0, 1]
    message, code = results[1].failed[2]
    assert "not visible on worker host" in message and "storage every node sees" in message and code == 1
