"""Reading videos, optical flow, audio copying, time ranges and the background threads of
`dreamer video` (no network needed; tiny synthetic clips)."""

from __future__ import annotations

import sys
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
import torch

from dreamer.errors import ImageError, UsageError
from dreamer.io.audio import add_audio, audio_packets
from dreamer.io.video import encode
from dreamer.io.video_in import probe_video, read_frames
from dreamer.video import flow as F
from dreamer.video.prefetch import Prefetch, Worker
from dreamer.video.source import frame_range, parse_time, working_size
from video_clips import decode, moving_frames, texture, write_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A few tiny clips shared by the tests of this module."""
    folder = tmp_path_factory.mktemp("clips")
    frames = moving_frames(8, 48, 64)
    return {
        "frames": frames,
        "mp4": write_clip(folder / "moving.mp4", frames),
        "silent": write_clip(folder / "silent.mp4", frames, audio=False),
        "folder": folder,
    }


# --- time ranges and sizes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds", "frame"),
    [("1.5s", 1.5, None), ("1.5", 1.5, None), ("2", 2.0, None), ("1:02.5", 62.5, None), (".5s", 0.5, None),
     ("30f", None, 30), ("0f", None, 0), ("0", 0.0, None)],
)
def test_parse_time(text, seconds, frame):
    point = parse_time(text)
    assert point.seconds == seconds and point.frame == frame


@pytest.mark.parametrize("text", ["", "abc", "-1s", "1.5x", "1:75", "3ff", "nan", "inf", "1e3"])
def test_parse_time_refuses(text):
    with pytest.raises(UsageError, match="--end"):
        parse_time(text, option="--end")


def test_frame_range():
    fps = Fraction(10)
    assert frame_range(50, fps) == (0, 50, False)
    # --start begins with the frame on screen at that time; --end stops before the first frame starting at/after it
    assert frame_range(50, fps, parse_time("0.25s"), parse_time("0.55s")) == (2, 6, False)
    assert frame_range(50, fps, parse_time("1s"), parse_time("2s")) == (10, 20, False)
    assert frame_range(50, fps, parse_time("10f"), parse_time("20f")) == (10, 20, False)
    assert frame_range(50, fps, None, parse_time("99s")) == (0, 50, True)
    with pytest.raises(UsageError, match="at or after the end"):
        frame_range(50, fps, parse_time("5s"))
    with pytest.raises(UsageError, match="not after"):
        frame_range(50, fps, parse_time("2s"), parse_time("1s"))


def test_working_size():
    assert working_size((48, 64), size=None, max_pixels=10_000, name="v") == (48, 64)
    assert working_size((480, 640), size=64, max_pixels=10_000, name="v") == (48, 64)
    with pytest.raises(ImageError, match="--size N to dream it smaller"):
        working_size((480, 640), size=None, max_pixels=10_000, name="v")
    with pytest.raises(UsageError, match="smaller --size"):
        working_size((48, 64), size=640, max_pixels=10_000, name="v")


# --- probing and reading --------------------------------------------------------------------------


def test_probe_and_read_mp4(clips):
    info = probe_video(clips["mp4"])
    assert (info.frames, info.fps, info.size, info.variable_rate) == (8, Fraction(10), (48, 64), False)
    assert info.duration == pytest.approx(0.8)
    assert info.audio is not None and info.audio.codec == "aac"
    frames = list(read_frames(info))
    assert len(frames) == 8 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    # lossy (4:2:0 chroma), but much closer to what was written than to a neighbouring frame
    error = np.abs(frames[3].astype(int) - clips["frames"][3]).mean()
    assert error < 8 and error < 0.5 * np.abs(frames[3].astype(int) - clips["frames"][4]).mean()
    part = list(read_frames(info, 2, 5))
    assert len(part) == 3 and all(np.array_equal(a, b) for a, b in zip(part, frames[2:5]))
    small = list(read_frames(info, 0, 2, size=(24, 32)))
    assert small[0].shape == (24, 32, 3)


def test_rotation_metadata_turns_frames_upright(tmp_path):
    frame = np.zeros((32, 48, 3), np.uint8)
    frame[:8, :8] = 255  # a white corner, top left as stored
    path = write_clip(tmp_path / "phone.mp4", [frame] * 3, rotation=90, audio=False)
    info = probe_video(path)
    assert info.rotation == 90 and info.size == (48, 32)
    upright = next(read_frames(info))
    assert upright.shape == (48, 32, 3)
    # a quarter turn counter-clockwise moves the top-left corner to the bottom left
    assert upright[-4:, :4].mean() > 200 and upright[:4, :4].mean() < 50


def test_variable_frame_rate_is_read_at_a_constant_rate(tmp_path):
    frames = [np.full((32, 32, 3), 20 * k, np.uint8) for k in range(6)]
    # shown at 0, 0.1, 0.3 (a 200 ms gap), 0.4, 0.45, 0.5 s
    path = write_clip(tmp_path / "vfr.mp4", frames, pts=[0, 100, 300, 400, 450, 500], time_base=1000, audio=False)
    info = probe_video(path)
    assert info.variable_rate and info.fps == 10 and info.source_frames == 6
    assert info.frames == 6 and info.duration == pytest.approx(0.6)
    got = [round(f.mean() / 20) for f in read_frames(info)]
    # the picture on screen at 0, 0.1, 0.2, 0.3, 0.4, 0.5 s: the 200 ms one repeats, the 50 ms one is skipped
    assert got == [0, 1, 1, 2, 3, 5]


def test_fps_override_resamples_the_timeline(clips):
    info = probe_video(clips["silent"], fps=5)
    assert info.frames == 4 and info.fps == 5
    every = list(read_frames(probe_video(clips["silent"])))
    halved = list(read_frames(info))
    assert len(halved) == 4 and all(np.array_equal(a, b) for a, b in zip(halved, every[::2]))


def test_gif_and_webm_inputs(tmp_path, clips):
    from PIL import Image

    pictures = [Image.fromarray(f) for f in clips["frames"][:4]]
    pictures[0].save(tmp_path / "a.gif", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    info = probe_video(tmp_path / "a.gif")
    assert (info.frames, info.fps, info.size, info.audio) == (4, 10, (48, 64), None)
    assert len(list(read_frames(info))) == 4
    webm = write_clip(tmp_path / "a.webm", clips["frames"][:4], codec="libvpx-vp9", audio_codec="libopus")
    info = probe_video(webm)
    assert info.frames == 4 and info.audio.codec == "opus"


def test_folder_of_numbered_frames(tmp_path, clips):
    from PIL import Image

    folder = tmp_path / "shots"
    folder.mkdir()
    for n, frame in zip((1, 2, 10), clips["frames"]):  # numeric order, not name order
        Image.fromarray(frame).save(folder / f"shot{n}.png")
    (folder / "notes.txt").write_text("not a frame")
    info = probe_video(folder, fps=24)
    assert (info.kind, info.frames, info.fps, info.size, info.audio) == ("folder", 3, 24, (48, 64), None)
    got = list(read_frames(info))
    assert all(np.array_equal(a, b) for a, b in zip(got, clips["frames"][:3]))
    Image.fromarray(clips["frames"][0][:40]).save(folder / "shot11.png")
    with pytest.raises(ImageError, match="shot11.png is 64x40"):
        list(read_frames(probe_video(folder)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "not a video"),
        (lambda p: p.write_text("hello"), "not a video"),
    ],
)
def test_unreadable_files(tmp_path, make, message):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(ImageError, match=message):
        probe_video(path)


def test_no_video_stream(tmp_path):
    import av

    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(ImageError, match="no video stream.*only audio"):
        probe_video(path)


def test_zero_frames(tmp_path):
    import av

    path = tmp_path / "empty.mkv"  # a video track without a single frame (and some sound)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width = video.height = 48
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    with pytest.raises(ImageError, match="empty.mkv has no frames"):
        probe_video(path)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])  # index at the end (cut off) / a streamable file cut short
def test_truncated_file(tmp_path, clips, suffix):
    whole = write_clip(tmp_path / f"whole{suffix}", moving_frames(30, 48, 48))
    data = whole.read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(ImageError, match=f"cut{suffix} is (not a video PyAV can read|truncated)"):
        probe_video(path)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        probe_video(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no numbered frames"):
        probe_video(tmp_path / "empty")


# --- flow -----------------------------------------------------------------------------------------


def test_flow_follows_a_translation():
    big = texture(64, 96)
    previous, current = big[:, 10:74], big[:, 13:77]  # content moves 3 px left
    move = F.motion(previous, current)
    inner = move.flow[8:-8, 8:-8]
    assert np.abs(inner[..., 0] - 3).mean() < 0.3 and np.abs(inner[..., 1]).mean() < 0.3
    # the right edge shows content that was not in the previous frame: unreliable
    assert move.mask[:, -2:].max() < 0.5 and move.mask[8:-8, 8:-12].min() > 0.9
    warped = F.warp(torch.from_numpy(previous).permute(2, 0, 1)[None].float(), torch.from_numpy(move.flow))
    error = np.abs(warped[0].permute(1, 2, 0).numpy() - current).mean(-1)
    assert (error * move.mask).sum() / move.mask.sum() < 2.0
    assert np.abs(previous.astype(float) - current).mean() > 10  # a real change was undone


def test_flow_of_large_frames_is_estimated_smaller_and_scaled_back():
    big = texture(200, 720)
    move = F.estimate_flow(big[:, 0:700], big[:, 8:708], max_side=350)  # estimated at half size
    assert move.shape == (200, 700, 2)
    # pixel x of the first frame is at x - 8 in the second
    assert np.median(move[20:-20, 20:-20, 0]) == pytest.approx(-8, abs=0.6)


def test_warp_by_whole_pixels_is_a_shift():
    image = torch.rand(1, 3, 10, 12)
    flow = torch.zeros(10, 12, 2)
    flow[..., 0] = 2  # read two pixels to the right
    out = F.warp(image, flow)
    assert torch.allclose(out[..., :, :10], image[..., :, 2:], atol=1e-5)
    assert torch.allclose(out[..., :, 10:], image[..., :, 11:12].expand(-1, -1, -1, 2), atol=1e-5)  # edge repeated


def test_consistency_mask_flags_a_disagreement():
    backward = np.zeros((20, 20, 2), np.float32)
    forward = np.zeros((20, 20, 2), np.float32)
    forward[5:10, 5:10] = 4.0  # forward flow that does not undo the backward one
    mask = F.consistency_mask(backward, forward, margin=0)
    assert mask[5:10, 5:10].max() == 0 and mask[12:, 12:].min() == 1
    assert F.consistency_mask(backward, forward).shape == (20, 20)


def test_without_opencv_flow_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(F.MissingDependencyError, match=r"pip install 'dreamer\[video\]'") as caught:
        F.require_cv2()
    assert caught.value.exit_code == 1
    none = F.motion(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), "none")
    assert none.flow is None and none.mask is None


# --- audio ----------------------------------------------------------------------------------------


def test_audio_is_copied_unchanged(tmp_path, clips):
    video = encode(clips["frames"], tmp_path / "v.mp4", fps=10)
    out = tmp_path / "with_sound.mp4"
    assert add_audio(video, clips["mp4"], out, audio_index=1) == "copied"
    assert audio_packets(out, 1) == audio_packets(clips["mp4"], 1) and len(audio_packets(out, 1)) > 5
    assert len(decode(out)) == 8 and video.exists()


def test_audio_span_is_cut_and_retimed(tmp_path, clips):
    video = encode(clips["frames"][:4], tmp_path / "v.mp4", fps=10)
    out = tmp_path / "part.mp4"
    add_audio(video, clips["mp4"], out, audio_index=1, begin=0.2, end=0.6)
    got = audio_packets(out, 1)
    assert got == audio_packets(clips["mp4"], 1, 0.2, 0.6) and 0 < len(got) < len(audio_packets(clips["mp4"], 1))
    info = probe_video(out)
    assert info.audio.duration == pytest.approx(0.4, abs=0.07)


def test_audio_that_mp4_cannot_hold_is_reencoded(tmp_path, clips):
    source = write_clip(tmp_path / "old.mov", clips["frames"][:4], audio_codec="pcm_mulaw")
    video = encode(clips["frames"][:4], tmp_path / "v.mp4", fps=10)
    out = tmp_path / "out.mp4"
    assert add_audio(video, source, out, audio_index=1) == "re-encoded (aac)"
    assert probe_video(out).audio.codec == "aac"


# --- background threads ---------------------------------------------------------------------------


def test_prefetch_runs_ahead_and_passes_errors_on():
    made = []

    def source():
        for i in range(5):
            made.append(i)
            yield i
        raise ValueError("broken at 5")

    items = Prefetch(source(), depth=2)
    assert next(items) == 0
    time.sleep(0.3)
    assert len(made) >= 3  # it ran ahead while we waited
    assert [next(items) for _ in range(4)] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="broken at 5"):
        next(items)
    items.close()


def test_prefetch_close_stops_the_thread():
    def endless():
        i = 0
        while True:
            i += 1
            yield i

    before = threading.active_count()
    items = Prefetch(endless(), depth=2)
    next(items)
    items.close()
    assert threading.active_count() == before


def test_worker_runs_in_order_and_reports_the_first_error():
    done = []
    worker = Worker(depth=2)
    for i in range(5):
        worker.submit(done.append, i)
    worker.wait()
    assert done == [0, 1, 2, 3, 4]

    def fail():
        raise OSError("disk full")

    worker.submit(fail)
    worker.submit(done.append, 99)
    with pytest.raises(OSError, match="disk full"):
        worker.finish()
    assert 99 not in done


def test_a_class_preset_dreams_video_frames_with_the_classic_loop():
    """A class preset grows pictures (fft, crops, opacity); video frames are dreamed on with the
    same class by the classic loop: crops become the standard transforms, the opacity goes."""
    from dreamer.cli.video import _config

    dream = _config({"preset": "banana"}, None, None, True).dream
    assert (dream.param, dream.transforms, dream.opacity_cost) == ("pixel", "standard", 0.0)
    assert [t.name for t in dream.classes] == ["banana"]
