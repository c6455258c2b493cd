"""`dreamer video`: the coherent dream loop, sessions (store, resume, Ctrl-C, batching), the
command line and its errors. CPU, tiny clips (48x48 to 64x48, 6-10 frames, 1 octave x 1-2 steps)."""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import dreamer
from dreamer.cli import main
from dreamer.config import DreamConfig
from dreamer.errors import ConfigError
from dreamer.io.audio import audio_packets
from dreamer.io.video_in import probe_video
from dreamer.video.frames import VideoConfig, VideoInput, dream_frames, dream_streams
from dreamer.io.video import partial_path
from dreamer.video.session import VideoInterrupted, dream_video, dream_videos
from video_clips import decode, flicker, moving_frames, write_clip

import dreamer.cli.video  # noqa: F401  (registers the command, also before cli/__init__ lists it)

LIGHT = DreamConfig(octaves=1, steps=2, layers=("mixed3b",))  # a shallow layer keeps the tests quick
FLAGS = ["--weights", "random:0", "--layer", "mixed3b", "--octaves", "1", "--steps", "2", "--device", "cpu", "-q"]
STEP = 2  # pixels the clips' content moves per frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """10 frames of a texture moving 2 px left per frame, 48x48 at 10 fps, with a tone."""
    folder = tmp_path_factory.mktemp("clip")
    return write_clip(folder / "moving.mp4", moving_frames(10, 48, 48, STEP))


@pytest.fixture(autouse=True)
def _shared_network(monkeypatch, network):
    """The CLI's model loading hands out the session's random GoogLeNet (the same weights it would
    load for --weights random:0), so each command does not build its own."""
    import dreamer.cli.video as cli_video

    real = cli_video.open_network

    def shared(model, weights, device, *, quiet):
        if (model, weights) == ("googlenet", "random:0"):
            return network
        return real(model, weights, device, quiet=quiet)

    monkeypatch.setattr(cli_video, "open_network", shared)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def stored(folder: Path) -> list[np.ndarray]:
    from dreamer.io.video import FrameStore

    store = FrameStore(folder)
    return [store.read(i) for i in range(store.count())]


# --- the loop -------------------------------------------------------------------------------------


def test_config_validation():
    with pytest.raises(ConfigError, match="blend"):
        VideoConfig(blend=1.5)
    with pytest.raises(ConfigError, match="flow"):
        VideoConfig(flow="lucas-kanade")
    with pytest.raises(ConfigError, match="param"):
        VideoConfig(dream=DreamConfig(param="fft"))
    config = VideoConfig(dream=LIGHT, flow="none", blend=0.3)
    assert VideoConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_dream_frames_one_out_per_frame_same_seed_same_frames(network):
    frames = moving_frames(4)
    config = VideoConfig(dream=LIGHT)
    first = list(dream_frames(frames, network, config))
    again = list(dream_frames(frames, network, config))
    assert len(first) == 4 and first[0].shape == (48, 48, 3) and first[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(np.abs(o.astype(int) - f).mean() > 1 for o, f in zip(first, frames))  # it dreamed
    other = list(dream_frames(frames, network, config, seed=5))
    assert not np.array_equal(first[1], other[1])


def test_blend_zero_dreams_each_frame_alone(network):
    frames = moving_frames(3)
    together = list(dream_frames(frames, network, VideoConfig(dream=LIGHT, blend=0.0)))
    # frame 2 alone, as the third frame of a video (its seed depends on its number only)
    alone = [m.image for m in dream_streams([VideoInput(frames[2:], done=2, previous=(frames[1], together[1]))],
                                            network, VideoConfig(dream=LIGHT, blend=0.0))]
    assert np.array_equal(together[2], alone[0])


def test_resumed_stream_continues_exactly(network):
    frames = moving_frames(5)
    config = VideoConfig(dream=LIGHT)
    whole = list(dream_frames(frames, network, config))
    rest = [m.image for m in dream_streams([VideoInput(frames[3:], done=3, previous=(frames[2], whole[2]))],
                                           network, config)]
    assert all(np.array_equal(a, b) for a, b in zip(whole[3:], rest))


def test_videos_of_one_size_share_a_batch(network):
    from dreamer.loops.deepdream import dream

    sizes = []

    def watched(images, *args, **kwargs):
        sizes.append(images.shape[0])
        return dream(images, *args, **kwargs)

    a, b = moving_frames(3, seed=1), moving_frames(3, seed=2)
    config = VideoConfig(dream=LIGHT)
    made = list(dream_streams([VideoInput(a, index=0), VideoInput(b, index=1)], network, config, dream=watched))
    assert sizes == [2, 2, 2]
    assert [(m.video, m.index) for m in made] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    alone = [m.image for m in dream_streams([VideoInput(b, index=1)], network, config)]
    batched = [m.image for m in made if m.video == 1]
    # the same frames as alone, up to float rounding in batched convolutions
    assert all(np.abs(x.astype(int) - y).max() <= 2 for x, y in zip(batched, alone))
    sizes.clear()
    list(dream_streams([VideoInput(a, index=0), VideoInput(b, index=1)], network, config, dream=watched,
                       batch_size=1))
    assert sizes == [1] * 6


# --- coherence: the measurement of the issue ------------------------------------------------------


def test_flow_makes_the_dream_coherent(clip, tmp_path):
    """Frame count, fps, duration and the audio are kept; the flicker (mean |difference| between
    consecutive frames after undoing the known motion) is >= 2x lower with optical flow than
    with every frame dreamed on its own (same seed and settings)."""
    outputs = {}
    for name, extra in (("flow", ["--flow", "farneback"]), ("alone", ["--blend", "0"])):
        out = tmp_path / f"{name}.mp4"
        code, text = run("video", clip, "-o", out, *FLAGS, *extra)
        assert code == 0, text
        info = probe_video(out)
        assert (info.frames, info.fps, info.size) == (10, Fraction(10), (48, 48))
        assert info.duration == pytest.approx(probe_video(clip).duration)
        assert audio_packets(out, info.audio.index) == audio_packets(clip, 1)
        outputs[name] = decode(out)
    source = flicker(decode(clip), STEP)
    coherent, alone = flicker(outputs["flow"], STEP), flicker(outputs["alone"], STEP)
    assert alone > 3 * source  # dreaming on its own does flicker
    assert alone >= 2 * coherent, (alone, coherent)


def test_real_network_coherence(lite0, tmp_path):
    frames = moving_frames(6, 64, 64, STEP)
    dream = DreamConfig(octaves=1, steps=2, layers=("block3",), model="efficientnet-lite0")
    coherent = list(dream_frames(frames, lite0, VideoConfig(dream=dream)))
    alone = list(dream_frames(frames, lite0, VideoConfig(dream=dream, blend=0.0)))
    assert flicker(alone, STEP) >= 2 * flicker(coherent, STEP)


# --- sessions: store, Ctrl-C, resume --------------------------------------------------------------


def interrupt_after(n: int):
    def progress(p):
        if p.done == n:
            raise KeyboardInterrupt

    return progress


def test_interrupt_leaves_a_partial_video_and_resume_gives_the_same_video(clip, tmp_path, network):
    config = VideoConfig(dream=LIGHT)
    whole = dream_video(clip, tmp_path / "whole.mp4", network=network, config=config, keep_frames=True)
    out = tmp_path / "cut.mp4"
    with pytest.raises(VideoInterrupted) as stop:
        dream_video(clip, out, network=network, config=config, progress=interrupt_after(4))
    (kept,) = stop.value.kept
    partial, folder = kept.partial, kept.store
    assert (kept.made, kept.frames, partial) == (4, 10, partial_path(out)) and not out.exists()
    assert len(decode(partial)) == 4 and probe_video(partial).audio is not None  # playable, with its sound
    assert len(stored(folder)) == 4
    # the settings must be the same to resume
    with pytest.raises(dreamer.errors.UsageError, match=r"config.dream.steps: was 2, now 3"):
        dream_video(clip, out, network=network, config=config.replace(dream=LIGHT.replace(steps=3)), resume=True)
    dream_video(clip, out, network=network, config=config, resume=True)
    assert not partial.exists() and not folder.exists()  # tidied: ours to remove
    assert [f.tobytes() for f in decode(out)] == [f.tobytes() for f in decode(whole)]
    assert audio_packets(out, 1) == audio_packets(clip, 1)


def test_progress_reports_rate_and_eta(clip, tmp_path, network):
    reports = []
    dream_video(clip, tmp_path / "v.gif", network=network, config=VideoConfig(dream=LIGHT), progress=reports.append,
                warn=lambda m: None)
    assert [r.done for r in reports] == list(range(1, 11)) and reports[-1].total == 10
    assert reports[0].rate is None and all(r.rate > 0 and r.eta >= 0 for r in reports[1:])
    assert reports[-1].eta == 0


def test_several_videos_in_one_call(clip, tmp_path, network):
    other = write_clip(tmp_path / "other.mp4", moving_frames(6, 48, 48, STEP, seed=9), audio=False)
    results = dream_videos([(clip, tmp_path / "a.mp4"), (other, tmp_path / "b.gif")], network,
                           VideoConfig(dream=LIGHT), warn=lambda m: None)
    assert [r.frames for r in results] == [10, 6]
    assert [r.audio for r in results] == ["copied", "none"]
    assert len(decode(tmp_path / "a.mp4")) == 10 and probe_video(tmp_path / "b.gif").frames == 6


# --- the command line -----------------------------------------------------------------------------


def test_cli_outputs_and_ranges(clip, tmp_path):
    code, text = run("video", clip, "-o", tmp_path / "part.mp4", "--start", "0.2s", "--end", "7f", *FLAGS)
    assert code == 0, text
    info = probe_video(tmp_path / "part.mp4")
    assert info.frames == 5 and info.duration == pytest.approx(0.5)
    assert audio_packets(tmp_path / "part.mp4", 1) == audio_packets(clip, 1, 0.2, 0.7)
    # GIF: no sound possible, said so
    result = CliRunner().invoke(main, ["video", str(clip), "-o", str(tmp_path / "v.gif"), *FLAGS[:-1]])
    assert result.exit_code == 0 and "audio is dropped" in result.output
    assert probe_video(tmp_path / "v.gif").frames == 10
    # a folder of frames
    code, _ = run("video", clip, "-o", tmp_path / "frames", *FLAGS, "--end", "4f")
    assert code == 0 and len(list((tmp_path / "frames").glob("frame_*.png"))) == 4
    # a folder as input
    code, _ = run("video", tmp_path / "frames", "-o", tmp_path / "again.mp4", "--fps", "5", *FLAGS)
    info = probe_video(tmp_path / "again.mp4")
    assert code == 0 and info.frames == 4 and info.fps == 5 and info.audio is None


def test_cli_interrupt_and_resume(clip, tmp_path, monkeypatch):
    import dreamer.cli.video as cli_video

    class Interrupting(cli_video.ProgressLine):
        def update(self, done, total, detail=""):
            if done == 3:
                raise KeyboardInterrupt

    out = tmp_path / "v.mp4"
    plain = cli_video.ProgressLine
    monkeypatch.setattr(cli_video, "ProgressLine", Interrupting)
    result = CliRunner().invoke(main, ["video", str(clip), "-o", str(out), *FLAGS])
    assert result.exit_code == 130
    assert "3 of 10 frames" in result.output and "--resume" in result.output
    assert len(decode(partial_path(out))) == 3 and not out.exists()
    monkeypatch.setattr(cli_video, "ProgressLine", plain)
    code, text = run("video", clip, "-o", out, *FLAGS)
    assert code == 2 and "already holds frames" in text  # neither --resume nor --force
    code, text = run("video", clip, "-o", out, *FLAGS[:6], "--steps", "1", "-q", "--resume")
    assert code == 2 and "steps: was 2, now 1" in text
    code, text = run("video", clip, "-o", out, *FLAGS, "--keep-colors", "--resume")  # controls are settings too
    assert code == 2 and "controls.keep_colors: was null, now true" in text
    code, text = run("video", clip, "-o", out, *FLAGS, "--resume")
    assert code == 0, text
    assert len(decode(out)) == 10 and not partial_path(out).exists()


def test_cli_never_overwrites(clip, tmp_path):
    code, text = run("video", clip, "-o", clip, *FLAGS)
    assert code == 2 and "would overwrite the input" in text
    out = tmp_path / "v.mp4"
    out.write_bytes(b"precious")
    code, text = run("video", clip, "-o", out, *FLAGS)
    assert code == 2 and "already exists" in text and out.read_bytes() == b"precious"
    code, text = run("video", clip, "-o", out, *FLAGS, "--force", "--end", "3f")
    assert code == 0 and len(decode(out)) == 3
    code, text = run("video", clip, "-o", tmp_path / "no" / "such" / "v.mp4", *FLAGS)
    assert code == 1 and "does not exist" in text
    (tmp_path / "afile").write_text("x")
    code, text = run("video", clip, "-o", tmp_path / "afile" / "v.mp4", *FLAGS)
    assert code == 1 and "afile" in text


def test_a_second_writer_is_refused_while_a_run_owns_the_output(clip, tmp_path, network):
    from dreamer.io.locks import LockedError, OutputLock

    out = tmp_path / "v.mp4"
    with OutputLock(out):  # as a running `dreamer video ... -o v.mp4` holds it
        with pytest.raises(LockedError, match="being written by another"):
            dream_video(clip, out, network=network, config=VideoConfig(dream=LIGHT), force=True)
        code, text = run("video", clip, "-o", out, *FLAGS, "--force")
        assert code == 1 and "lock file" in text
    assert not out.exists() and not Path(str(out) + ".frames").exists()


def test_foreign_files_are_never_touched(clip, tmp_path):
    folder = tmp_path / "mine"  # an existing folder as -o: a frames-folder output, as in `dreamer zoom`
    folder.mkdir()
    (folder / "manifest.json").write_text('{"my": "notes"}')
    (folder / "frame_000000.png").write_bytes(b"not dreamer's")
    for extra in ([], ["--force"], ["--resume"]):
        code, text = run("video", clip, "-o", folder, *FLAGS, *extra)
        assert code == 2 and "did not write" in text, (extra, text)
    assert (folder / "manifest.json").read_text() == '{"my": "notes"}'
    assert (folder / "frame_000000.png").read_bytes() == b"not dreamer's"
    # a file where the partial video would go is not overwritten by an interrupted run
    out = tmp_path / "v.mp4"
    partial_path(out).write_bytes(b"someone's video")
    with pytest.raises(VideoInterrupted) as stop:
        dream_video(clip, out, weights="random:0", device="cpu", config=VideoConfig(dream=LIGHT),
                    progress=interrupt_after(2))
    assert stop.value.kept[0].partial is None and "did not write" in stop.value.kept[0].note
    assert partial_path(out).read_bytes() == b"someone's video"


def test_force_keeps_the_old_output_until_the_new_one_is_complete(clip, tmp_path, network):
    config = VideoConfig(dream=LIGHT)
    for out in (tmp_path / "v.mp4", tmp_path / "frames"):
        dream_video(clip, out, network=network, config=config, end="4f", warn=lambda m: None)
        before = decode(out) if out.suffix else stored(out)
        with pytest.raises(VideoInterrupted):
            dream_video(clip, out, network=network, config=config.replace(blend=0.5), force=True,
                        progress=interrupt_after(2), warn=lambda m: None)
        after = decode(out) if out.suffix else stored(out)
        assert len(after) == 4 and all(np.array_equal(a, b) for a, b in zip(before, after))
        # the run goes on with --resume, and only then replaces the output
        dream_video(clip, out, network=network, config=config.replace(blend=0.5), resume=True, warn=lambda m: None)
        final = decode(out) if out.suffix else stored(out)
        assert len(final) == 10 and not partial_path(out).exists()


def test_cli_frame_folder_output_inside_the_input_is_refused(clip, tmp_path):
    folder = tmp_path / "shots"
    code, _ = run("video", clip, "-o", folder, *FLAGS, "--end", "3f")
    assert code == 0
    code, text = run("video", folder, "-o", folder, *FLAGS)
    assert code == 2 and "would overwrite the input" in text
    assert len(list(folder.glob("frame_*.png"))) == 3


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda p: p.write_bytes(b"\x00" * 3000), 1, "not a video"),
        (lambda p: p.write_bytes(b""), 1, "empty"),
    ],
)
def test_cli_bad_files(tmp_path, make, code, message):
    path = tmp_path / "bad.mp4"
    make(path)
    got, text = run("video", path, *FLAGS)
    assert got == code and message in text and "Traceback" not in text
    assert not (tmp_path / "bad.dream.mp4").exists() and not (tmp_path / "bad.dream.mp4.frames").exists()


def test_cli_truncated_video(clip, tmp_path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    code, text = run("video", cut, "-o", tmp_path / "o.mp4", *FLAGS)
    assert code == 1 and "cut.mp4" in text and "truncated" in text and "Traceback" not in text
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.mp4.frames").exists()


def test_a_failure_mid_run_keeps_the_frames_and_names_them(clip, tmp_path, network, monkeypatch):
    """An input that breaks after some frames (corrupt data found while decoding)."""
    import dreamer.io.video_in as video_in

    real = video_in.read_frames

    def breaking(info, start=0, stop=None, *, size=None):
        for n, frame in enumerate(real(info, start, stop, size=size)):
            if n == 5:
                raise dreamer.errors.ImageError(f"{info.path} is corrupt or truncated at frame 5: test")
            yield frame

    monkeypatch.setattr(video_in, "read_frames", breaking)
    out = tmp_path / "v.mp4"
    with pytest.raises(dreamer.errors.ImageError) as error:
        dream_video(clip, out, network=network, config=VideoConfig(dream=LIGHT))
    assert "at frame 5" in error.value.message and "5 of 10 frames" in error.value.hint
    assert len(stored(Path(str(out) + ".frames"))) == 5 and len(decode(partial_path(out))) == 5
    assert not out.exists()


def test_cli_missing_and_odd_inputs(tmp_path):
    code, text = run("video", tmp_path / "nope.mp4", *FLAGS)
    assert code == 2 and "no such file" in text
    code, text = run("video", *FLAGS)
    assert code == 2 and "no video given" in text
    odd = write_clip(tmp_path / "odd.mkv", [f[:45, :47] for f in moving_frames(3, 48, 48)], codec="ffv1", audio=False)
    code, text = run("video", odd, "-o", tmp_path / "odd.gif", *FLAGS)
    assert code == 0, text
    assert probe_video(tmp_path / "odd.gif").size == (45, 47)  # kept exactly (an MP4 pads to even sizes)
    code, text = run("video", odd, "-o", tmp_path / "odd.mp4", *FLAGS)
    assert code == 0 and len(decode(tmp_path / "odd.mp4")) == 3


def test_cli_rotation_and_variable_rate(tmp_path):
    frames = moving_frames(4, 48, 64)
    phone = write_clip(tmp_path / "phone.mp4", frames, rotation=90)
    code, text = run("video", phone, "-o", tmp_path / "up.mp4", *FLAGS)
    assert code == 0, text
    assert probe_video(tmp_path / "up.mp4").size == (64, 48) and probe_video(tmp_path / "up.mp4").rotation == 0
    vfr = write_clip(tmp_path / "vfr.mp4", frames, pts=[0, 100, 300, 400], time_base=1000)
    result = CliRunner().invoke(main, ["video", str(vfr), "-o", str(tmp_path / "cfr.mp4"), *FLAGS[:-1]])
    assert result.exit_code == 0 and "variable frame rate" in result.output
    info = probe_video(tmp_path / "cfr.mp4")
    assert info.frames == 5 and info.fps == 10 and not info.variable_rate


def test_cli_huge_frames_are_refused_or_scaled(clip, tmp_path):
    code, text = run("video", clip, "-o", tmp_path / "v.mp4", "--max-pixels", "1000", *FLAGS)
    assert code == 1 and "more than the limit of 1000" in text and "--size" in text
    code, text = run("video", clip, "-o", tmp_path / "v.mp4", "--max-pixels", "1200", "--size", "40", *FLAGS)
    assert code == 2 and "smaller --size" in text
    code, text = run("video", clip, "-o", tmp_path / "v.mp4", "--max-pixels", "1200", "--size", "34", *FLAGS)
    assert code == 0, text
    assert probe_video(tmp_path / "v.mp4").size == (34, 34)


def test_cli_without_opencv(clip, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    code, text = run("video", clip, "-o", tmp_path / "v.mp4", *FLAGS)
    assert code == 1 and "pip install 'dreamer[video]'" in text
    code, text = run("video", clip, "-o", tmp_path / "v.mp4", "--flow", "none", "--end", "3f", *FLAGS)
    assert code == 0 and len(decode(tmp_path / "v.mp4")) == 3


def test_cli_output_folders(clip, tmp_path):
    code, _ = run("video", clip, "-o", f"{tmp_path / 'new'}/", *FLAGS, "--end", "2f")
    assert code == 0 and len(decode(tmp_path / "new" / "moving.dream.mp4")) == 2
    code, _ = run("video", clip, "-o", tmp_path / "new", "--format", "gif", *FLAGS, "--end", "2f")
    assert code == 0 and (tmp_path / "new" / "moving.dream.gif").exists()
    code, _ = run("video", clip, clip, "-o", tmp_path / "two", *FLAGS)
    assert code == 2  # both would be written to one file


def test_cli_usage_errors(clip, tmp_path):
    for args, message in (
        (["--blend", "2"], "blend"),
        (["--start", "soon"], "--start"),
        (["--start", "99s"], "after the end"),
        (["--force", "--resume"], "not both"),
        (["--layer", "mixed9z"], "mixed9z"),
        (["-o", tmp_path / "v.avi"], "extension"),
    ):
        code, text = run("video", clip, *FLAGS, *args)
        assert code == 2 and message in text, (args, text)


def test_help_shows_the_defaults_used():
    from dreamer.video.frames import DEFAULT_BLEND, VIDEO_DREAM

    code, text = run("video", "--help")
    flat = " ".join(text.split())
    assert code == 0
    assert f"--octaves N Number of octaves (scales). [default: {VIDEO_DREAM.octaves};" in flat
    assert f"[default: {VIDEO_DREAM.steps};" in flat.split("--steps N", 1)[1]
    assert f"[default: {DEFAULT_BLEND:g};" in flat.split("--blend W", 1)[1]
    assert "[default: farneback]" in flat


def test_api_paths_in_path_out(clip, tmp_path, network):
    out = dreamer.dream_video(clip, tmp_path / "api.mp4", network=network, layers=["mixed3b"], octaves=1, steps=1,
                              end="2f")
    assert out == tmp_path / "api.mp4" and len(decode(out)) == 2
    # the lower-level API: frames in, dreamed frames out, nothing written
    frames = moving_frames(2)
    made = list(dreamer.dream_frames(iter(frames), network, dreamer.VideoConfig(dream=LIGHT, flow="none")))
    assert len(made) == 2 and made[1].shape == frames[1].shape and not np.array_equal(made[1], frames[1])


# --- controls on video ------------------------------------------------------------------------


def _chroma(frames: list[np.ndarray]) -> np.ndarray:
    """The Cb and Cr planes (0-255 scale) of uint8 RGB frames, by the rule --keep-colors uses."""
    from dreamer.colors import rgb_to_ycbcr

    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).double() / 255.0
    return (rgb_to_ycbcr(x)[:, 1:] * 255.0).numpy()


def test_cli_controls_steer_every_frame(clip, tmp_path):
    """--keep-colors keeps the footage's colours, --mask keeps its black part as it was and
    --guide changes the dream; without them the frames are what they always were."""
    from PIL import Image

    source = decode(clip)
    flags = [*FLAGS, "--step-size", "6", "--format", "frames"]
    code, text = run("video", clip, "-o", tmp_path / "plain", *flags)
    assert code == 0, text
    plain = stored(tmp_path / "plain")
    code, text = run("video", clip, "-o", tmp_path / "colors", "--keep-colors", *flags)
    assert code == 0, text
    colors = stored(tmp_path / "colors")
    assert len(colors) == len(source) == 10
    drift = lambda frames: float(np.abs(_chroma(frames) - _chroma(source)).mean())  # noqa: E731
    assert drift(colors) < 0.3 * drift(plain), (drift(colors), drift(plain))

    mask = tmp_path / "left-kept.png"
    Image.fromarray(np.concatenate([np.zeros((48, 24), np.uint8), np.full((48, 24), 255, np.uint8)], 1)).save(mask)
    code, text = run("video", clip, "-o", tmp_path / "masked", "--mask", mask, *flags)
    assert code == 0, text
    masked = stored(tmp_path / "masked")
    np.testing.assert_array_equal(masked[0][:, :24], source[0][:, :24])  # black: exactly as it was
    change = lambda frames, part: float(np.mean([np.abs(a[:, part].astype(int) - b[:, part].astype(int)).mean()  # noqa: E731
                                                 for a, b in zip(frames, source)]))
    assert change(masked, slice(0, 8)) < 0.2 * change(masked, slice(24, 48))

    code, text = run("video", clip, "-o", tmp_path / "guided", "--guide", mask, *flags)
    assert code == 0, text
    assert any(not np.array_equal(a, b) for a, b in zip(stored(tmp_path / "guided"), plain))
    code, text = run("video", clip, "-o", tmp_path / "bad", "--mask", tmp_path / "missing.png", *flags)
    assert code == 2 and "missing.png" in text and not (tmp_path / "bad").exists()


def test_api_controls_steer_every_frame(clip, tmp_path, network):
    """`dreamer.dream_video(..., keep_colors=True, mask=...)` as `dreamer.dream` takes them; the
    controls are recorded, so a resume with other ones is refused."""
    from dreamer.errors import UsageError

    source = decode(clip)
    kw = dict(network=network, layers=["mixed3b"], octaves=1, steps=2, step_size=6.0, end="4f", audio=False)
    plain = stored(dreamer.dream_video(clip, tmp_path / "plain", **kw))  # frame folders: no encoder's chroma loss
    kept = stored(dreamer.dream_video(clip, tmp_path / "kept", keep_colors=True, **kw))
    drift = lambda frames: float(np.abs(_chroma(frames) - _chroma(source[: len(frames)])).mean())  # noqa: E731
    assert drift(kept) < 0.3 * drift(plain), (drift(kept), drift(plain))
    mask = torch.zeros(48, 48)
    mask[:, 24:] = 1.0
    out = tmp_path / "masked"
    dreamer.dream_video(clip, out, mask=mask, **kw)
    first = stored(out)[0]
    np.testing.assert_array_equal(first[:, :24], source[0][:, :24])
    with pytest.raises(UsageError, match="controls"):
        dreamer.dream_video(clip, out, resume=True, **kw)  # the frames were masked; this run is not
