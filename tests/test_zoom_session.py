"""Zoom videos from Python, without the command line: `make_zoom_video` and `ZoomSession`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dreamer
from dreamer.config import DreamConfig
from dreamer.errors import ConfigError, OutputExistsError, UsageError
from dreamer.io.locks import LockedError, lock_path
from dreamer.io.video import FrameStore, read_frames
from dreamer.zoom import ZoomConfig, ZoomJob, ZoomSession, ZoomVideo, make_zoom_video, zoom_frames

CONFIG = ZoomConfig(frames=4, zoom=1.1, dreams=(DreamConfig(octaves=1, steps=1, layers=("mixed3a",), jitter=2),))


def start(seed: int = 0, size=(32, 32)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g), size=size, mode="bilinear",
                                           align_corners=False).clamp(0, 1)


def test_make_zoom_video_is_exported_and_makes_a_verified_file(tmp_path, network):
    assert dreamer.make_zoom_video is make_zoom_video
    events = []
    out = make_zoom_video("noise:32x32", tmp_path / "z.gif", network=network, config=CONFIG, seed=2,
                          on_event=lambda e: events.append((e.kind, e.frame)))
    assert out == tmp_path / "z.gif" and len(read_frames(out)) == 4
    assert events == [("frame", 0), ("frame", 1), ("frame", 2), ("frame", 3), ("finished", -1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.gif"]  # no store, no lock
    with pytest.raises(OutputExistsError):
        make_zoom_video("noise:32x32", out, network=network, config=CONFIG)
    with pytest.raises(UsageError, match="not both"):
        make_zoom_video("noise:32x32", out, network=network, config=CONFIG, resume=True, force=True)


def test_an_interrupted_video_resumes_to_the_same_frames_from_python(tmp_path, network):
    straight = make_zoom_video(start(1), tmp_path / "straight", network=network, config=CONFIG, seed=5)

    def stop(event):
        if event.kind == "frame" and event.frame == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_zoom_video(start(1), tmp_path / "z.webp", network=network, config=CONFIG, seed=5, on_event=stop)
    assert len(read_frames(tmp_path / "z.partial.webp")) == 3
    assert not (tmp_path / "z.webp").exists() and not lock_path(tmp_path / "z.webp").exists()
    make_zoom_video(start(1), tmp_path / "z.webp", network=network, config=CONFIG, seed=5, resume=True,
                    keep_frames=True)
    for a, b in zip(read_frames(straight), read_frames(tmp_path / "z.webp.frames"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "z.partial.webp").exists()


def test_a_runner_of_its_own_can_use_record_and_finish(tmp_path, network):
    """What a distributed runner does: frames made elsewhere, written and finished by the session."""
    job = ZoomJob(start(3), tmp_path / "z.gif", CONFIG, seed=1, source="made in a test")
    with ZoomSession([job], model=network.name, weights=network.weights) as session:
        (video,) = session.videos
        assert video.store.folder == tmp_path / "z.gif.frames" and video.done == 0
        for frame in zoom_frames([ZoomVideo(video.start, CONFIG, seed=1)], network):
            session.record(video, frame.index, frame.image, network)
        assert session.finish(video) == tmp_path / "z.gif" and video.finished
    reference = make_zoom_video(start(3), tmp_path / "ref", network=network, config=CONFIG, seed=1)
    assert len(read_frames(tmp_path / "z.gif")) == len(read_frames(reference)) == 4
    meta = dreamer.io.images.read_metadata(reference / "frame_000001.png")
    assert meta["frame"] == 1 and meta["octaves_used"] == 1


def test_finish_refuses_a_store_with_missing_frames(tmp_path, network):
    job = ZoomJob(start(), tmp_path / "z.gif", CONFIG)
    with ZoomSession([job], model=network.name, weights=network.weights) as session:
        (video,) = session.videos
        session.record(video, 0, np.zeros((32, 32, 3), np.uint8))
        with pytest.raises(dreamer.errors.OutputError, match="1 of its 4 frames"):
            session.finish(video)
    assert not (tmp_path / "z.gif").exists()


def test_a_failing_open_changes_nothing_and_holds_no_lock(tmp_path, network):
    (tmp_path / "taken.gif").write_bytes(b"a user's file")
    jobs = [ZoomJob(start(), tmp_path / "a.gif", CONFIG), ZoomJob(start(), tmp_path / "taken.gif", CONFIG, index=1)]
    with pytest.raises(OutputExistsError, match="taken.gif"):
        ZoomSession(jobs, model=network.name, weights=network.weights).open()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.gif"]


def test_two_sessions_on_one_output_the_second_is_locked_out(tmp_path, network):
    job = ZoomJob(start(), tmp_path / "z.gif", CONFIG)
    with ZoomSession([job], model=network.name, weights=network.weights):
        with pytest.raises(LockedError) as info:
            ZoomSession([job], model=network.name, weights=network.weights, mode="force").open()
        assert info.value.exit_code == 1 and info.value.lock == lock_path(tmp_path / "z.gif")
    assert not lock_path(tmp_path / "z.gif").exists()


def test_jobs_are_checked_when_made(tmp_path):
    with pytest.raises(ConfigError, match="fps"):
        ZoomJob(start(), tmp_path / "z.gif", CONFIG, fps=0)
    with pytest.raises(ValueError, match="start"):
        ZoomJob(torch.rand(3, 8, 8), tmp_path / "z.gif", CONFIG)
    with pytest.raises(ValueError, match="mode"):
        ZoomSession([ZoomJob(start(), tmp_path / "z.gif", CONFIG)], model="googlenet", weights="random", mode="again")
    with pytest.raises(RuntimeError, match="open"):
        ZoomSession([ZoomJob(start(), tmp_path / "z.gif", CONFIG)], model="googlenet", weights="random").run(None)


def test_a_session_that_made_no_frame_leaves_no_trace(tmp_path, network):
    mine = tmp_path / "mine"
    mine.mkdir()
    with ZoomSession([ZoomJob(start(), mine, CONFIG)], model=network.name, weights=network.weights):
        assert FrameStore(mine).survey().ours  # the manifest marks it while the session works
    assert mine.is_dir() and list(mine.iterdir()) == []  # the user's folder, as it was
    with ZoomSession([ZoomJob(start(), tmp_path / "z.gif", CONFIG)], model=network.name, weights=network.weights):
        assert (tmp_path / "z.gif.frames").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
