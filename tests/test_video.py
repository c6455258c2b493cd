"""Frame stores, output checks and video encoding (dreamer.io.video)."""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreamer.errors import EncoderError, ImageError, OutputError, OutputExistsError, UsageError
from dreamer.io.video import FrameStore, encode, frame_store_path, output_kind, prepare_output, read_frames


def gradient_frames(n: int = 5, height: int = 21, width: int = 33) -> list[np.ndarray]:
    """Smooth, distinct frames: horizontal and vertical ramps that shift from frame to frame."""
    y, x = np.mgrid[0:height, 0:width]
    return [
        np.stack([x * 200 // width + 8 * k, y * 200 // height + 4 * k, np.full_like(x, 60 + 20 * k)], axis=-1)
        .astype(np.uint8)
        for k in range(n)
    ]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".dreamer-tmp-"))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- output kinds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [("zoom.mp4", "mp4"), ("ZOOM.GIF", "gif"), ("a.b.webp", "webp"), ("frames", "frames"), ("x.frames", "frames")],
)
def test_output_kind(tmp_path, name, kind):
    assert output_kind(tmp_path / name) == kind


def test_existing_folder_with_a_dot_is_a_frames_output(tmp_path):
    (tmp_path / "run.v2").mkdir()
    assert output_kind(tmp_path / "run.v2") == "frames"


@pytest.mark.parametrize("name", ["zoom.avi", "zoom.png"])
def test_unknown_extension_is_a_usage_error(tmp_path, name):
    with pytest.raises(UsageError, match=r"a folder, \.mp4, \.gif or \.webp") as info:
        output_kind(tmp_path / name)
    assert info.value.exit_code == 2
    with pytest.raises(UsageError):
        encode(gradient_frames(1), tmp_path / name, fps=10)


def test_frame_store_path(tmp_path):
    assert frame_store_path(tmp_path / "zoom.mp4") == tmp_path / "zoom.mp4.frames"
    assert frame_store_path(tmp_path / "out") == tmp_path / "out"


# --- frame store ----------------------------------------------------------------------------------


def test_store_counts_consecutive_frames_and_reads_them_back_exactly(tmp_path):
    store = FrameStore(tmp_path)
    frames = gradient_frames(4)
    for index in (0, 1, 3):  # a gap at 2
        store.write(index, frames[index])
    (tmp_path / ".tmp-abc-frame_000002.png").write_bytes(b"half written")
    assert store.count() == 2
    assert store.paths() == [tmp_path / "frame_000000.png", tmp_path / "frame_000001.png"]
    for index in (0, 1, 3):
        got = store.read(index)
        assert got.dtype == np.uint8 and got.shape == (21, 33, 3)
        np.testing.assert_array_equal(got, frames[index])
    store.write(2, frames[2])
    assert store.count() == 4


def test_store_writes_leave_no_temp_files_and_keep_metadata(tmp_path):
    store = FrameStore(tmp_path)
    store.write(0, gradient_frames(1)[0], {"seed": "7", "layer": "mixed4c"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame_000000.png"]
    with Image.open(tmp_path / "frame_000000.png") as image:
        assert image.text == {"seed": "7", "layer": "mixed4c"}


def test_failed_frame_write_keeps_the_old_frame_and_no_temp(tmp_path, monkeypatch):
    store = FrameStore(tmp_path)
    old, new = gradient_frames(2)
    store.write(0, old)

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError, match="frame_000000.png"):
        store.write(0, new)
    monkeypatch.undo()
    assert leftovers(tmp_path) == []
    np.testing.assert_array_equal(store.read(0), old)


def test_store_rejects_non_rgb_uint8(tmp_path):
    with pytest.raises(ValueError):
        FrameStore(tmp_path).write(0, np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        FrameStore(tmp_path).write(0, np.zeros((4, 4, 3), np.float32))


def test_manifest_round_trip(tmp_path):
    store = FrameStore(tmp_path)
    assert store.read_manifest() is None
    manifest = {"format": "dreamer test 1", "fps": 24.0, "layers": ["mixed4c"], "seed": 3, "zoom": {"scale": 1.05}}
    store.write_manifest(manifest)
    assert store.read_manifest() == manifest
    assert store.survey().ours
    assert leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="format"):  # a manifest without dreamer's signature is refused
        store.write_manifest({"seed": 3})
    for foreign in ("{not json", '{"seed": 3}', '{"format": "other tool 2"}', "[1, 2]"):
        (tmp_path / "manifest.json").write_text(foreign)
        assert store.read_manifest() is None
        survey = store.survey()
        assert not survey.ours and survey.foreign == ["manifest.json"]


def test_clear_removes_frames_manifest_and_empty_store_folder(tmp_path):
    folder = tmp_path / "zoom.mp4.frames"
    folder.mkdir()
    store = FrameStore(folder)
    store.write_manifest(MANIFEST)
    for index, frame in enumerate(gradient_frames(3)):
        store.write(index, frame)
    store.clear()
    assert not folder.exists()

    user_folder = tmp_path / "mine"  # a user's frames folder is kept, and so are their other files
    user_folder.mkdir()
    (user_folder / "notes.txt").write_text("keep me")
    FrameStore(user_folder).write_manifest(MANIFEST)
    FrameStore(user_folder).write(0, gradient_frames(1)[0])
    FrameStore(user_folder).clear()
    assert sorted(p.name for p in user_folder.iterdir()) == ["notes.txt"]


def test_clear_never_removes_frames_of_unknown_origin(tmp_path):
    """PNGs named like frames, in a folder without dreamer's manifest, are not dreamer's to delete."""
    folder = tmp_path / "theirs.frames"
    folder.mkdir()
    Image.fromarray(gradient_frames(1)[0]).save(folder / "frame_000000.png")
    (folder / "manifest.json").write_text('{"format": "some other tool"}')
    survey = FrameStore(folder).survey()
    assert sorted(survey.foreign) == ["frame_000000.png", "manifest.json"] and not survey.frames
    FrameStore(folder).clear()
    assert sorted(p.name for p in folder.iterdir()) == ["frame_000000.png", "manifest.json"]


# --- prepare_output -------------------------------------------------------------------------------


MANIFEST = {"format": "dreamer test 1", "seed": 1}


def filled_store(output: Path, n: int = 3) -> FrameStore:
    store = prepare_output(output, force=False, resume=False)
    store.write_manifest(MANIFEST)
    for index, frame in enumerate(gradient_frames(n)):
        store.write(index, frame)
    return store


def test_prepare_creates_the_store(tmp_path):
    store = prepare_output(tmp_path / "zoom.mp4", force=False, resume=False)
    assert store.folder == tmp_path / "zoom.mp4.frames" and store.folder.is_dir()
    assert store.count() == 0
    store = prepare_output(tmp_path / "out", force=False, resume=False)
    assert store.folder == tmp_path / "out" and store.folder.is_dir()


def test_prepare_refuses_a_file_where_a_folder_must_go(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputError, match="is a file"):
        prepare_output(tmp_path / "out", force=True, resume=False)
    (tmp_path / "zoom.gif.frames").write_text("a file")
    with pytest.raises(OutputError, match="is a file"):
        prepare_output(tmp_path / "zoom.gif", force=True, resume=False)
    assert (tmp_path / "out").read_text() == "a file"


def test_prepare_refuses_an_existing_video_without_force_or_resume(tmp_path):
    (tmp_path / "zoom.mp4").write_bytes(b"old video")
    with pytest.raises(OutputExistsError) as info:
        prepare_output(tmp_path / "zoom.mp4", force=False, resume=False)
    assert "--force" in info.value.hint and "--resume" in info.value.hint
    assert info.value.exit_code == 2
    assert not (tmp_path / "zoom.mp4.frames").exists()  # nothing done before the check


@pytest.mark.parametrize("name", ["zoom.mp4", "out"])
def test_prepare_refuses_existing_frames_without_resume(tmp_path, name):
    filled_store(tmp_path / name)
    with pytest.raises(OutputExistsError) as info:
        prepare_output(tmp_path / name, force=False, resume=False)
    assert "--resume" in info.value.hint


def test_force_clears_the_frames_but_keeps_the_old_video_until_replaced(tmp_path):
    output = tmp_path / "zoom.mp4"
    filled_store(output)
    output.write_bytes(b"old video")
    store = prepare_output(output, force=True, resume=False)
    assert store.folder.is_dir() and store.count() == 0 and store.read_manifest() is None
    assert output.read_bytes() == b"old video"


@pytest.mark.parametrize("force", [False, True])
def test_resume_keeps_the_frames_and_manifest(tmp_path, force):
    output = tmp_path / "zoom.webp"
    filled_store(output, n=3)
    output.write_bytes(b"partial video")
    store = prepare_output(output, force=force, resume=True)
    assert store.count() == 3 and store.read_manifest() == MANIFEST


def test_prepare_names_a_missing_or_file_parent(tmp_path):
    with pytest.raises(OutputError, match="missing.*does not exist"):
        prepare_output(tmp_path / "missing" / "zoom.mp4", force=False, resume=False)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile.*not a folder"):
        prepare_output(tmp_path / "afile" / "zoom.mp4", force=False, resume=False)
    with pytest.raises(OutputError, match="afile"):
        prepare_output(tmp_path / "afile" / "deeper" / "out", force=False, resume=False)


def test_prepare_reports_an_unwritable_folder(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(OutputError, match="zoom.mp4.frames.*Permission denied"):
        prepare_output(tmp_path / "zoom.mp4", force=False, resume=False)


# --- encode / read_frames -------------------------------------------------------------------------


def test_mp4_pads_odd_sizes_by_repeating_the_edge(tmp_path):
    pytest.importorskip("av")
    frames = gradient_frames(6, height=21, width=33)
    assert encode(frames, tmp_path / "z.mp4", fps=24) == tmp_path / "z.mp4"
    got = read_frames(tmp_path / "z.mp4")
    assert len(got) == 6
    for out, src in zip(got, frames):
        assert out.shape == (22, 34, 3) and out.dtype == np.uint8
        # Measured about 3.4 with libx264 crf 18 on these frames.
        assert mean_abs_diff(out[:21, :33], src) < 12
        # The padding repeats the last row/column (black padding would differ by ~150 here).
        assert mean_abs_diff(out[:21, 33], src[:, 32]) < 12
        assert mean_abs_diff(out[21, :33], src[20, :]) < 12
    assert leftovers(tmp_path) == []


def test_mp4_even_size_and_fractional_fps(tmp_path):
    av = pytest.importorskip("av")
    frames = gradient_frames(5, height=24, width=32)
    encode(frames, tmp_path / "z.mp4", fps=29.97)
    got = read_frames(tmp_path / "z.mp4")
    assert len(got) == 5 and got[0].shape == (24, 32, 3)
    with av.open(str(tmp_path / "z.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(2997, 100)
        assert stream.codec_context.pix_fmt == "yuv420p"


def test_gif_frames_count_size_colours_and_timing(tmp_path):
    frames = gradient_frames(5)
    encode(frames, tmp_path / "z.gif", fps=10)
    got = read_frames(tmp_path / "z.gif")
    assert len(got) == 5
    for out, src in zip(got, frames):
        assert out.shape == (21, 33, 3)
        assert mean_abs_diff(out, src) < 8  # palette quantisation; measured about 1.6
    with Image.open(tmp_path / "z.gif") as image:
        assert image.info["duration"] == 100 and image.info["loop"] == 0


def test_webp_frames_count_size_colours_and_timing(tmp_path):
    frames = gradient_frames(5)
    encode(frames, tmp_path / "z.webp", fps=20)
    got = read_frames(tmp_path / "z.webp")
    assert len(got) == 5
    for out, src in zip(got, frames):
        assert out.shape == (21, 33, 3)
        assert mean_abs_diff(out, src) < 8  # lossy quality 90; measured about 1.6
    with Image.open(tmp_path / "z.webp") as image:
        image.load()  # WebP reports a frame's duration once it is decoded
        assert image.info["duration"] == 50 and image.info["loop"] == 0


def test_encode_from_store_paths_matches_encode_from_arrays(tmp_path):
    store = filled_store(tmp_path / "z.gif", n=4)
    encode(store.paths(), tmp_path / "z.gif", fps=10)
    encode(gradient_frames(4), tmp_path / "y.gif", fps=10)
    assert (tmp_path / "z.gif").read_bytes() == (tmp_path / "y.gif").read_bytes()


def test_frames_kind_is_a_no_op_and_reads_back(tmp_path):
    store = filled_store(tmp_path / "out", n=3)
    before = sorted(p.name for p in store.folder.iterdir())
    assert encode(store.paths(), tmp_path / "out", fps=10) == tmp_path / "out"
    assert sorted(p.name for p in store.folder.iterdir()) == before
    for got, src in zip(read_frames(tmp_path / "out"), gradient_frames(3)):
        np.testing.assert_array_equal(got, src)


@pytest.mark.parametrize("ext", [".mp4", ".gif", ".webp"])
def test_failed_encode_keeps_the_old_file_and_leaves_no_temp(tmp_path, ext):
    if ext == ".mp4":
        pytest.importorskip("av")
    output = tmp_path / f"z{ext}"
    output.write_bytes(b"old video")
    frames = gradient_frames(3) + [np.zeros((10, 10, 3), np.uint8)]  # last frame has another size
    with pytest.raises(EncoderError, match="differ in size"):
        encode(frames, output, fps=10)
    assert output.read_bytes() == b"old video"
    assert leftovers(tmp_path) == []
    encode(gradient_frames(3), output, fps=10)  # success replaces it
    assert len(read_frames(output)) == 3


def test_encode_needs_frames_and_a_positive_fps(tmp_path):
    with pytest.raises(EncoderError, match="no frames"):
        encode([], tmp_path / "z.gif", fps=10)
    for fps in (0, -1, float("nan")):
        with pytest.raises(UsageError, match="fps"):
            encode(gradient_frames(1), tmp_path / "z.gif", fps=fps)
    assert list(tmp_path.iterdir()) == []


def test_encode_into_a_missing_folder_is_an_output_error(tmp_path):
    pytest.importorskip("av")
    for ext in (".mp4", ".gif"):
        with pytest.raises(OutputError, match="missing"):
            encode(gradient_frames(1), tmp_path / "missing" / f"z{ext}", fps=10)


def test_missing_pyav_only_matters_for_mp4(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(EncoderError, match="pip install av") as info:
        encode(gradient_frames(2), tmp_path / "z.mp4", fps=10)
    assert info.value.exit_code == 1
    assert list(tmp_path.iterdir()) == []
    encode(gradient_frames(2), tmp_path / "z.gif", fps=10)
    assert len(read_frames(tmp_path / "z.gif")) == 2


def test_read_frames_of_a_broken_file_is_an_image_error(tmp_path):
    for name in ("bad.mp4", "bad.gif"):
        (tmp_path / name).write_bytes(b"not a video" * 10)
        with pytest.raises(ImageError, match=name):
            read_frames(tmp_path / name)


# --- MP4 bytes are a pure function of the frames ---------------------------------------------------


def zoom_like_frames(n: int = 24, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Frames like a zoom video's: a smooth picture zoomed and rotated a little each frame, with
    fresh fine grain (the content that showed libx264's run-to-run differences)."""
    import torch

    from dreamer import transforms as T

    g = torch.Generator().manual_seed(seed)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, size // 4, size // 4, generator=g), size=(size, size),
                                            mode="bilinear", align_corners=False)
    frames = []
    for _ in range(n):
        image = T.feedback(image, zoom=1.05, rotate=1.0, shift=(0.0, 0.0))
        image = (image + 0.08 * (torch.rand(image.shape, generator=g) - 0.5)).clamp(0, 1)
        frames.append((image[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    return frames


def test_mp4_from_a_store_equals_mp4_from_arrays_byte_for_byte(tmp_path):
    """What a resumed run encodes (frames read back from PNGs) is what a straight run encodes."""
    pytest.importorskip("av")
    frames = zoom_like_frames(n=8, size=48, seed=3)
    store = FrameStore(tmp_path / "s.frames")
    store.folder.mkdir()
    store.write_manifest(MANIFEST)
    for index, frame in enumerate(frames):
        store.write(index, frame)
    encode(frames, tmp_path / "a.mp4", fps=24)
    encode(store.paths(), tmp_path / "b.mp4", fps=24)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_x264_is_kept_off_avx512_where_the_cpu_has_it(monkeypatch):
    import dreamer.io.video as video

    monkeypatch.setattr(video.platform, "machine", lambda: "x86_64")
    for flags, asm in [({"avx2", "fma", "bmi1", "bmi2", "avx512f"}, "AVX2"), ({"avx2", "fma", "bmi1", "bmi2"}, None),
                       (set(), None)]:
        monkeypatch.setattr(video, "_cpu_flags", lambda flags=flags: flags)
        video._x264_asm.cache_clear()
        assert video._x264_asm() == asm
        options = video._x264_options()
        assert options["threads"] == "4"  # fixed: the bytes must not depend on the number of CPUs
        assert options.get("x264-params") == (f"asm={asm}" if asm else None)
    monkeypatch.setattr(video.platform, "machine", lambda: "arm64")
    video._x264_asm.cache_clear()
    assert video._x264_asm() is None
    video._x264_asm.cache_clear()


def test_encode_verifies_the_frame_count(tmp_path):
    pytest.importorskip("av")
    frames = gradient_frames(4)
    for ext in (".mp4", ".gif", ".webp"):
        out = tmp_path / f"z{ext}"
        encode(frames, out, fps=10, expect=4)
        with pytest.raises(EncoderError, match="not 5"):
            encode(frames, out, fps=10, expect=5)
        assert len(read_frames(out)) == 4  # the good file stays
    assert leftovers(tmp_path) == []


def test_check_fps_and_encoder_refuse_rates_before_any_work(tmp_path):
    from dreamer.errors import ConfigError
    from dreamer.io.video import check_encoder, check_fps

    for fps in (0, -1, 1e-9, 0.009, 1001, float("nan"), float("inf"), True):
        with pytest.raises(ConfigError):
            check_fps(fps)
    for kind in ("gif", "webp", "mp4"):
        if kind == "mp4" and pytest.importorskip("av") is None:
            continue
        check_encoder(kind, 0.01)
        check_encoder(kind, 1000)
    assert list(tmp_path.iterdir()) == []
