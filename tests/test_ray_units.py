"""Zoom units as a worker runs them, here in this process (no cluster), on videos of a real
`ZoomSession`: the same frames as the session's own single-process run, taken over after a
crash from the frame stores, stopped between rounds, tidied after a kill, one video's failure
kept to that video."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dreamer.config import DreamConfig
from dreamer.errors import OutputError
from dreamer.io.images import make_noise
from dreamer.io.video import FrameStore, read_frames
from dreamer.scale.runner import FrameDone, JobFailed, UnitStarted
from dreamer.scale.zoom import session_tasks, zoom_units
from dreamer.zoom.feedback import ZoomConfig, frame_seed
from dreamer.zoom.session import ZoomJob, ZoomSession

DREAM = DreamConfig(octaves=1, steps=1, layers=("mixed3b",))
SIZES = [(48, 48), (48, 48), (40, 56)]


class Crash(BaseException):
    """Stands for the worker process dying: nothing in the unit catches it."""


def make_session(folder, *, kind="frames", mode="new", frames=5) -> ZoomSession:
    jobs = []
    for i, (h, w) in enumerate(SIZES):
        config = ZoomConfig(frames=frames, dreams=(DREAM,), zoom=1.1, rotate=2.0)
        output = folder / (f"v{i}" if kind == "frames" else f"v{i}.{kind}")
        jobs.append(ZoomJob(make_noise((h, w), seed=frame_seed(3, i, 0), amplitude=0.1), output, config, seed=3,
                            index=i, fps=10.0, source=f"noise:{w}x{h}", name=f"jobs.txt:{i + 1}"))
    return ZoomSession(jobs, model="googlenet", weights="random:0", mode=mode)


@pytest.fixture(scope="module")
def straight(network, tmp_path_factory):
    """Each video's frames as the session makes them in this process (what `dreamer zoom` does)."""
    folder = tmp_path_factory.mktemp("straight")
    with make_session(folder) as session:
        session.run(network)
    return {i: read_frames(folder / f"v{i}") for i in range(3)}


def run_units_here(session, network, units=None, stopping=lambda: False):
    """What the cluster does, in this process: each unit on the network, then the session
    finishes the videos whose frames are all made."""
    units = units if units is not None else zoom_units(session_tasks(session))
    events, results = [], []
    for unit in units:
        result = unit.run(network, events.append, stopping)
        for job in result.finished:
            session.finish(session.videos[job])
        results.append(result)
    return results, events


def assert_same(folder, straight, videos=range(3), kind="frames"):
    for i in videos:
        got = read_frames(folder / (f"v{i}" if kind == "frames" else f"v{i}.{kind}"))
        assert len(got) == len(straight[i])
        for k, (a, b) in enumerate(zip(got, straight[i])):
            np.testing.assert_array_equal(a, b, err_msg=f"video {i} frame {k}")


def test_units_make_the_sessions_own_frames(tmp_path, network, straight):
    with make_session(tmp_path) as session:
        units = zoom_units(session_tasks(session))
        assert [u.job_ids for u in units] == [(0, 1), (2,)]
        results, events = run_units_here(session, network, units)
        assert all(v.finished for v in session.videos)
    assert [sorted(r.finished) for r in results] == [[0, 1], [2]] and not any(r.failed for r in results)
    assert_same(tmp_path, straight)
    assert sum(isinstance(e, FrameDone) for e in events) == 15
    assert [e.done for e in events if isinstance(e, UnitStarted)] == [((0, 0), (1, 0)), ((2, 0),)]
    # the frames carry the session's metadata (seed of each frame, video number)
    from PIL import Image

    from dreamer.io.metadata import parse_metadata

    with Image.open(tmp_path / "v1" / "frame_000002.png") as image:
        record = parse_metadata(image.text)
    assert record["seed"] == frame_seed(3, 1, 2) and record["video"] == 1 and record["frame"] == 2


def test_a_unit_run_again_after_a_crash_resumes_from_its_stores(tmp_path, network, straight):
    from dreamer.loops import run_config

    crash_seed = frame_seed(3, 1, 3)  # while dreaming frame 3 of video 1 (batched with video 0)
    calls, crashed = [], []

    def dream(images, net, config, seeds=None, **kwargs):
        calls.append(list(seeds))
        if crash_seed in seeds and not crashed:
            crashed.append(1)
            raise Crash
        return run_config(images, net, config, seeds=seeds, **kwargs)

    with make_session(tmp_path) as session:
        unit = zoom_units(session_tasks(session), dream=dream)[0]
        with pytest.raises(Crash):
            unit.run(network, lambda e: None, lambda: False)
        assert [session.videos[i].store.count() for i in (0, 1)] == [3, 3]
        calls.clear()
        results, events = run_units_here(session, network, [unit])
    assert sorted(results[0].finished) == [0, 1]
    assert events[0] == UnitStarted(unit.number, done=((0, 3), (1, 3)))  # not from the start
    assert len(calls) == 2  # frames 3 and 4, each as a batch of two
    assert_same(tmp_path, straight, (0, 1))


def test_a_crash_between_two_writes_of_a_batch_makes_that_frame_again(tmp_path, network, straight, monkeypatch):
    real = FrameStore.write
    writes = []

    def write(self, index, *args, **kwargs):
        writes.append(index)
        if len(writes) == 8:  # frames 0-2 of both videos, frame 3 of video 0, then Crash
            raise Crash
        return real(self, index, *args, **kwargs)

    with make_session(tmp_path) as session:
        unit = zoom_units(session_tasks(session))[0]
        monkeypatch.setattr(FrameStore, "write", write)
        with pytest.raises(Crash):
            unit.run(network, lambda e: None, lambda: False)
        monkeypatch.setattr(FrameStore, "write", real)
        assert [session.videos[i].store.count() for i in (0, 1)] == [4, 3]
        results, events = run_units_here(session, network, [unit])
    assert events[0].done == ((0, 3), (1, 3))  # video 0's frame 3 is made again, in its batch of two
    assert_same(tmp_path, straight, (0, 1))


def test_abandon_trims_to_the_last_whole_round(tmp_path, straight):
    with make_session(tmp_path) as session:
        unit = zoom_units(session_tasks(session))[0]
        for k in range(4):
            session.videos[0].store.write(k, straight[0][k])
        for k in range(3):
            session.videos[1].store.write(k, straight[1][k])
        unit.abandon()
        assert [session.videos[i].store.count() for i in (0, 1)] == [3, 3]


def test_stopping_ends_between_rounds_and_a_resume_is_exact(tmp_path, network, straight):
    asked = []

    def stopping():
        asked.append(1)
        return len(asked) >= 3  # at the start, after the frame 0s, then after round 1

    with make_session(tmp_path) as session:
        results, _ = run_units_here(session, network, stopping=stopping)
        counts = [v.store.count() for v in session.videos]
    assert all(r.stopped for r in results) and not any(r.finished for r in results)
    assert counts[0] == counts[1] and 1 < counts[0] < 5
    with make_session(tmp_path, mode="resume") as session:
        assert [v.done for v in session.videos] == counts
        results, _ = run_units_here(session, network)
    assert sorted(j for r in results for j in r.finished) == [0, 1, 2]
    assert_same(tmp_path, straight)


def test_one_videos_write_error_fails_it_alone_and_keeps_the_others_exact(tmp_path, network, straight, monkeypatch):
    real = FrameStore.write

    def write(self, index, *args, **kwargs):
        if self.folder.name.startswith("v1") and index == 2:
            raise OutputError("frame 2: no space left on device")
        return real(self, index, *args, **kwargs)

    monkeypatch.setattr(FrameStore, "write", write)
    with make_session(tmp_path, kind="gif") as session:
        results, events = run_units_here(session, network)
        assert [v.status for v in session.videos] == ["finished", "pending", "finished"]
    assert results[0].failed == {1: ("jobs.txt:2: frame 2: no space left on device", 1)}
    assert JobFailed(1, "jobs.txt:2: frame 2: no space left on device", 1) in events
    assert sorted(results[0].finished) == [0] and sorted(results[1].finished) == [2]
    for i in (0, 2):  # GIF frames are palette-quantised: compare the frame count, and that the store is gone
        assert len(read_frames(tmp_path / f"v{i}.gif")) == 5
        assert not (tmp_path / f"v{i}.gif.frames").exists()
    assert FrameStore(tmp_path / "v1.gif.frames").count() == 2  # the failed video keeps its frames


def test_a_store_no_worker_can_see_fails_its_unit_with_the_reason(tmp_path, network):
    with make_session(tmp_path) as session:
        units = zoom_units(session_tasks(session))
        shutil.rmtree(session.videos[2].store.folder)  # as a worker on a node without the shared folder sees it
        results, _ = run_units_here(session, network, units)
    assert sorted(results[0].finished) == [0, 1]
    message, code = results[1].failed[2]
    assert "not visible on worker host" in message and "storage every node sees" in message and code == 1
