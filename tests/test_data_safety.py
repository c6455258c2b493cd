"""Nothing is lost: `dreamer zoom` against hostile situations (issue #11's data-loss cases and more).

Each test sets up what a careless or unlucky user might have on disk, runs the command, and checks
that every file dreamer did not write is byte-for-byte as it was, that the exit code and message
say what happened, and that no traceback is shown. Frames are tiny (noise 32x32 .. 48x48, one
step on the session's random network).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import dreamer.loops
from dreamer.io.locks import lock_path
from dreamer.io.video import FrameStore, read_frames

FAST = ["--steps", "1", "--octaves", "1", "--weights", "random", "--layer", "mixed3a", "--jitter", "2"]


@pytest.fixture
def cli(network, monkeypatch):
    """`dreamer zoom ...` in-process with the session's random network; result.loads counts model loads."""
    from dreamer.cli import main
    import dreamer.cli.zoom as zoom_cli

    loads = []

    def fake_open(model, weights, device, *, quiet):
        loads.append(model)
        return network

    monkeypatch.setattr(zoom_cli, "open_network", fake_open)

    def run(*args: str):
        result = CliRunner().invoke(main, ["zoom", *map(str, args), *FAST])
        result.loads = list(loads)
        assert "Traceback" not in result.output, result.output
        assert not isinstance(result.exception, (AssertionError, TypeError, AttributeError, KeyError, ValueError)), \
            result.output
        return result

    return run


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative name -> content hash)."""
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def photo(path: Path, size=(40, 40), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def interrupt_after(monkeypatch, calls: int):
    """Ctrl-C (KeyboardInterrupt) on the `calls + 1`-th dream; returns a function that undoes it."""
    real = dreamer.loops.run_config
    count = {"n": 0}

    def dream(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dreamer.loops, "run_config", dream)
    return lambda: monkeypatch.setattr(dreamer.loops, "run_config", real)


def during_frame(monkeypatch, frame: int, action):
    """Run `action()` just before the `frame`-th dream of this call (1-based)."""
    real = dreamer.loops.run_config
    count = {"n": 0}

    def dream(*args, **kwargs):
        count["n"] += 1
        if count["n"] == frame:
            action()
        return real(*args, **kwargs)

    monkeypatch.setattr(dreamer.loops, "run_config", dream)


# --- files dreamer did not write ------------------------------------------------------------------


@pytest.mark.parametrize("flag", [None, "--force", "--resume"])
def test_a_users_manifest_in_the_output_folder_is_never_touched(cli, tmp_path, flag):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "manifest.json").write_text('{"my": "project"}')
    before = tree(out)
    result = cli("noise:32x32", "--frames", "2", "-o", out, *([flag] if flag else []))
    assert result.exit_code == 2, result.output
    assert "did not write" in result.output and "manifest.json" in result.output
    assert tree(out) == before
    assert result.loads == []


@pytest.mark.parametrize("flag", [None, "--force"])
def test_an_output_folder_with_photos_is_refused(cli, tmp_path, flag):
    out = tmp_path / "holiday"
    out.mkdir()
    photo(out / "beach.png")
    (out / "frame_000000.png").write_bytes((out / "beach.png").read_bytes())  # a name dreamer would use
    before = tree(out)
    result = cli("noise:32x32", "--frames", "2", "-o", out, *([flag] if flag else []))
    assert result.exit_code == 2 and "did not write" in result.output
    assert tree(out) == before


def test_a_frame_store_with_foreign_files_is_refused_even_with_force(cli, tmp_path):
    store = tmp_path / "z.mp4.frames"
    store.mkdir()
    (store / "notes.txt").write_text("mine")
    result = cli("noise:32x32", "--frames", "2", "-o", tmp_path / "z.mp4", "--force")
    assert result.exit_code == 2 and "notes.txt" in result.output
    assert (store / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "z.mp4").exists()


def test_an_empty_folder_and_file_browser_litter_are_fine(cli, tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    (out / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    result = cli("noise:32x32", "--frames", "2", "-o", out)
    assert result.exit_code == 0, result.output
    assert len(read_frames(out)) == 2 and (out / ".DS_Store").read_bytes() == b"\0\0\0\1Bud1"
    again = cli("noise:32x32", "--frames", "3", "-o", out, "--force")  # dreamer's own frames: replaced
    assert again.exit_code == 0, again.output
    assert len(read_frames(out)) == 3 and (out / ".DS_Store").exists()


def test_a_manifest_of_another_dreamer_command_is_not_resumed(cli, tmp_path):
    store = tmp_path / "z.gif.frames"
    store.mkdir()
    FrameStore(store).write_manifest({"format": "dreamer video 1", "frames": 9})
    FrameStore(store).write(0, np.zeros((32, 32, 3), np.uint8))
    result = cli("noise:32x32", "--frames", "2", "-o", tmp_path / "z.gif", "--resume")
    assert result.exit_code == 2 and "dreamer video 1" in result.output
    assert FrameStore(store).count() == 1


# --- sources --------------------------------------------------------------------------------------


def test_a_source_inside_the_frame_store_is_never_deleted(cli, tmp_path):
    out = tmp_path / "z.gif"
    assert cli("noise:32x32", "--frames", "3", "-o", out, "--keep-frames").exit_code == 0
    source = tmp_path / "z.gif.frames" / "frame_000002.png"
    before = digest(source)
    for flag in ("--force", "--resume"):
        result = cli(source, "--frames", "3", "-o", out, flag)
        assert result.exit_code == 2, result.output
        assert "lies in" in result.output
        assert digest(source) == before


def test_an_output_that_is_the_source_by_another_path_is_refused(cli, tmp_path):
    frames = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (10, 200)]
    src = tmp_path / "anim.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:])
    before = digest(src)
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.gif"
    link.symlink_to(src)
    for out in (tmp_path / "sub" / ".." / "anim.gif", link):
        result = cli(src, "--frames", "2", "-o", out, "--force")
        assert result.exit_code == 2 and "would overwrite the source" in result.output, result.output
    assert digest(src) == before and link.is_symlink()


# --- concurrent runs and locks --------------------------------------------------------------------


def test_a_second_writer_is_refused_and_the_first_run_finishes_whole(cli, tmp_path, monkeypatch):
    out = tmp_path / "z.gif"
    second = {}

    def run_again():
        second["result"] = CliRunner().invoke(
            dreamer.cli.main, ["zoom", "noise:32x32", "--frames", "2", "-o", str(out), "--force", *FAST])

    import dreamer.cli

    during_frame(monkeypatch, 2, run_again)
    first = cli("noise:32x32", "--frames", "4", "-o", out)
    assert first.exit_code == 0, first.output
    blocked = second["result"]
    assert blocked.exit_code == 1, blocked.output
    assert "being written by another dreamer run" in blocked.output and str(lock_path(out)) in blocked.output
    assert len(read_frames(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.gif"]  # locks released, store removed


def test_a_lock_of_a_live_process_blocks_and_a_dead_ones_is_taken_over(cli, tmp_path):
    out = tmp_path / "z.gif"
    import socket

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path(out).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "started": 0}))
        blocked = cli("noise:32x32", "--frames", "2", "-o", out)
        assert blocked.exit_code == 1 and f"pid {sleeper.pid}" in blocked.output and ".z.gif.dreamer-lock" in blocked.output
        assert not out.exists() and not (tmp_path / "z.gif.frames").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    taken = cli("noise:32x32", "--frames", "2", "-o", out)  # its owner is gone: a stale lock
    assert taken.exit_code == 0, taken.output
    assert not lock_path(out).exists()


def test_an_unreadable_lock_is_not_removed(cli, tmp_path):
    out = tmp_path / "z.gif"
    lock_path(out).write_text("garbage")
    result = cli("noise:32x32", "--frames", "2", "-o", out)
    assert result.exit_code == 1 and "lock file" in result.output
    assert lock_path(out).read_text() == "garbage"


def test_frames_lost_during_the_run_are_never_reported_as_success(cli, tmp_path, monkeypatch):
    """What a second --force run did before locks: deleted the first run's frames under it."""
    out = tmp_path / "z.gif"

    def lose_frames():
        for path in (tmp_path / "z.gif.frames").glob("frame_*.png"):
            path.unlink()

    during_frame(monkeypatch, 3, lose_frames)
    result = cli("noise:32x32", "--frames", "4", "-o", out)
    assert result.exit_code == 1, result.output
    assert "not finished" in result.output and "--resume" in result.output
    assert not out.exists()


def test_the_same_output_twice_in_a_jobs_file_or_through_its_store_is_refused(cli, tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("noise:32x32 - a.mp4\nnoise:32x32 - a.mp4.frames\n")  # the second is the first's store
    result = cli("--jobs", jobs)
    assert result.exit_code == 2 and "would both be written" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.txt"]


# --- interruptions --------------------------------------------------------------------------------


def test_ctrl_c_during_a_forced_rerun_keeps_the_finished_video(cli, tmp_path, monkeypatch):
    pytest.importorskip("av")
    out = tmp_path / "z.mp4"
    assert cli("noise:32x32", "--frames", "5", "-o", out).exit_code == 0
    before = digest(out)
    restore = interrupt_after(monkeypatch, 1)
    stopped = cli("noise:32x32", "--frames", "5", "--seed", "1", "-o", out, "--force")
    restore()
    assert stopped.exit_code == 130
    assert digest(out) == before and len(read_frames(out)) == 5
    partial = tmp_path / "z.partial.mp4"
    assert f"partial video: {partial}" in stopped.output and "unchanged" in stopped.output
    assert len(read_frames(partial)) == 2
    resumed = cli("noise:32x32", "--frames", "5", "--seed", "1", "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert digest(out) != before and len(read_frames(out)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.mp4"]


def test_ctrl_c_during_a_forced_rerun_keeps_a_finished_frames_folder(cli, tmp_path, monkeypatch):
    out = tmp_path / "frames"
    args = ["noise:32x32", "--frames", "4", "--seed", "5", "--zoom", "1.1"]
    assert cli(*args[:-4], "-o", out).exit_code == 0
    before = tree(out)
    restore = interrupt_after(monkeypatch, 1)
    stopped = cli(*args, "-o", out, "--force")
    restore()
    assert stopped.exit_code == 130
    assert tree(out) == before  # the finished frames are all still there, unchanged
    assert f"2 of 4 frames are in {tmp_path / 'frames.partial'}" in stopped.output
    resumed = cli(*args, "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    straight = cli(*args, "-o", tmp_path / "straight")
    for a, b in zip(read_frames(out), read_frames(tmp_path / "straight"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "straight"]


def test_a_partial_name_taken_by_a_users_file_is_left_alone(cli, tmp_path, monkeypatch):
    out = tmp_path / "z.gif"
    (tmp_path / "z.partial.gif").write_bytes(b"my own gif")
    restore = interrupt_after(monkeypatch, 1)
    stopped = cli("noise:32x32", "--frames", "4", "-o", out)
    restore()
    assert stopped.exit_code == 130 and "dreamer did not write it" in stopped.output
    assert (tmp_path / "z.partial.gif").read_bytes() == b"my own gif"
    assert FrameStore(tmp_path / "z.gif.frames").count() == 2


def _spawn_zoom(tmp_path: Path, out: Path, frames: int) -> subprocess.Popen:
    code = (
        "import sys, dreamer.models as m\n"
        "from dreamer.cli import main\n"
        f"sys.argv = ['dreamer', 'zoom', 'noise:32x32', '--frames', '{frames}', '-o', {str(out)!r}, "
        + ", ".join(repr(a) for a in FAST) + "]\n"
        "main()\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("no frame appeared in time")
        time.sleep(0.05)


def test_a_real_ctrl_c_mid_run_keeps_the_frames_and_writes_a_partial(cli, tmp_path):
    """A separate `dreamer zoom` process gets a real SIGINT once frame 2 is stored."""
    out = tmp_path / "z.gif"
    proc = _spawn_zoom(tmp_path, out, 400)
    _wait_for(tmp_path / "z.gif.frames" / "frame_000002.png", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    done = FrameStore(tmp_path / "z.gif.frames").count()
    assert done >= 3
    assert "partial video" in err and len(read_frames(tmp_path / "z.partial.gif")) == done
    assert not lock_path(out).exists()
    forced = cli("noise:32x32", "--frames", "3", "-o", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert len(read_frames(out)) == 3 and not lock_path(out).exists()
    assert not (tmp_path / "z.partial.gif").exists()  # the partial of the replaced run went with it


def test_a_killed_runs_lock_is_taken_over(cli, tmp_path):
    """SIGKILL leaves the lock file behind (nothing can remove it); its owner is gone, so the
    next run takes it over. The holder here only takes the lock, like a run that was dreaming."""
    out = tmp_path / "z.gif"
    code = ("import sys, time\nfrom dreamer.io.locks import OutputLock\n"
            "OutputLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    blocked = cli("noise:32x32", "--frames", "2", "-o", out)
    assert blocked.exit_code == 1 and f"pid {holder.pid}" in blocked.output
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_path(out).exists()
    taken = cli("noise:32x32", "--frames", "2", "-o", out)
    assert taken.exit_code == 0, taken.output
    assert len(read_frames(out)) == 2 and not lock_path(out).exists()


# --- the file system says no ----------------------------------------------------------------------


def test_a_full_disk_keeps_the_frames_written_and_resume_finishes(cli, tmp_path, monkeypatch):
    out = tmp_path / "frames"
    args = ["noise:32x32", "--frames", "5", "--seed", "2"]
    real_save = Image.Image.save
    writes = {"n": 0}

    def save(self, fp, format=None, **params):
        if format == "PNG" and str(fp).endswith(".png"):
            writes["n"] += 1
            if writes["n"] > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, format, **params)

    monkeypatch.setattr(Image.Image, "save", save)
    full = cli(*args, "-o", out)
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert full.exit_code == 1, full.output
    assert "No space left on device" in full.output and "frame 3" in full.output
    assert FrameStore(out).count() == 3
    assert not any(p.name.startswith(".dreamer-tmp-") for p in out.iterdir())
    resumed = cli(*args, "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    straight = cli(*args, "-o", tmp_path / "straight")
    for a, b in zip(read_frames(out), read_frames(tmp_path / "straight"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_names_too_long_for_the_file_system_are_one_line_errors(cli, tmp_path):
    long_out = tmp_path / ("v" * 300 + ".mp4")
    result = cli("noise:32x32", "--frames", "2", "-o", long_out)
    assert result.exit_code == 1 and "too long" in result.output
    # an output name that fits, but whose frame store name (+ ".frames") does not
    near = tmp_path / ("w" * 246 + ".mp4")
    result = cli("noise:32x32", "--frames", "2", "-o", near)
    assert result.exit_code == 1 and "frame store" in result.output
    # a source whose default output name is too long
    source = photo(tmp_path / ("s" * 245 + ".png"))
    result = cli(source, "--frames", "2")
    assert result.exit_code == 1 and "longer than this file system allows" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]


def test_a_corrupt_last_frame_is_named_on_resume(cli, tmp_path, monkeypatch):
    out = tmp_path / "frames"
    restore = interrupt_after(monkeypatch, 2)
    assert cli("noise:32x32", "--frames", "5", "-o", out).exit_code == 130
    restore()
    (out / "frame_000002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = cli("noise:32x32", "--frames", "5", "-o", out, "--resume")
    assert result.exit_code == 1 and "frame 2" in result.output and "cannot be read" in result.output
    assert len(result.loads) == 1  # only the first run's: the resume failed before loading the model


@pytest.mark.parametrize("fps", ["1e-9", "0.001", "5000"])
def test_an_fps_the_encoder_cannot_use_is_refused_before_any_work(cli, tmp_path, fps):
    result = cli("noise:32x32", "--frames", "2", "--fps", fps, "-o", tmp_path / "z.mp4")
    assert result.exit_code == 2 and "--fps" in result.output
    assert result.loads == [] and list(tmp_path.iterdir()) == []


def test_a_noise_source_obeys_max_pixels(cli, tmp_path):
    result = cli("noise:16384x16384", "--frames", "2", "-o", tmp_path / "z.gif")
    assert result.exit_code == 2 and "max-pixels" in result.output
    result = cli("noise:64x64", "--frames", "2", "--max-pixels", "1000", "-o", tmp_path / "z.gif")
    assert result.exit_code == 2 and "max-pixels" in result.output
    assert result.loads == [] and list(tmp_path.iterdir()) == []


# --- more hostile set-ups -------------------------------------------------------------------------


def test_the_sources_own_folder_as_frames_output_is_refused(cli, tmp_path):
    src = photo(tmp_path / "cat.png")
    before = tree(tmp_path)
    result = cli(src, "--frames", "2", "-o", tmp_path, "--force")
    assert result.exit_code == 2 and "cat.png" in result.output
    assert tree(tmp_path) == before


def test_a_corrupt_manifest_makes_the_store_foreign(cli, tmp_path, monkeypatch):
    out = tmp_path / "frames"
    restore = interrupt_after(monkeypatch, 1)
    assert cli("noise:32x32", "--frames", "4", "-o", out).exit_code == 130
    restore()
    (out / "manifest.json").write_text('{"format": "dreamer zoom 1", "sou')  # cut short
    before = tree(out)
    for flag in ("--resume", "--force"):
        result = cli("noise:32x32", "--frames", "4", "-o", out, flag)
        assert result.exit_code == 2 and "did not write" in result.output
    assert tree(out) == before


def test_frames_that_are_links_to_other_files_are_not_dreamers(cli, tmp_path):
    precious = photo(tmp_path / "precious.png")
    before = digest(precious)
    store = tmp_path / "z.gif.frames"
    store.mkdir()
    FrameStore(store).write_manifest({"format": "dreamer zoom 1", "frames": 2})
    (store / "frame_000000.png").symlink_to(precious)
    result = cli("noise:32x32", "--frames", "2", "-o", tmp_path / "z.gif", "--force")
    assert result.exit_code == 2 and "frame_000000.png" in result.output
    assert digest(precious) == before and (store / "frame_000000.png").is_symlink()


def test_force_replaces_an_output_link_not_the_file_it_points_to(cli, tmp_path):
    target = tmp_path / "elsewhere.gif"
    target.write_bytes(b"a user's animation")
    link = tmp_path / "z.gif"
    link.symlink_to(target)
    refused = cli("noise:32x32", "--frames", "2", "-o", link)
    assert refused.exit_code == 2 and "already exists" in refused.output
    forced = cli("noise:32x32", "--frames", "2", "-o", link, "--force")
    assert forced.exit_code == 0, forced.output
    assert target.read_bytes() == b"a user's animation"
    assert not link.is_symlink() and len(read_frames(link)) == 2


def test_one_videos_partial_may_not_be_another_videos_output(cli, tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("noise:32x32 - a.gif\nnoise:32x32 - a.partial.gif\n")
    result = cli("--jobs", jobs)
    assert result.exit_code == 2 and "would both be written" in result.output


def test_ctrl_c_while_the_final_video_is_encoded_keeps_the_old_one(cli, tmp_path, monkeypatch):
    import dreamer.zoom.session as session

    out = tmp_path / "z.gif"
    assert cli("noise:32x32", "--frames", "3", "-o", out).exit_code == 0
    before = digest(out)
    real = session.encode

    def encode(frames, output, **kwargs):
        if Path(output) == out:
            raise KeyboardInterrupt  # Ctrl-C in the middle of writing the new video
        return real(frames, output, **kwargs)

    monkeypatch.setattr(session, "encode", encode)
    stopped = cli("noise:32x32", "--frames", "3", "--seed", "9", "-o", out, "--force")
    monkeypatch.setattr(session, "encode", real)
    assert stopped.exit_code == 130
    assert digest(out) == before
    assert len(read_frames(tmp_path / "z.partial.gif")) == 3  # all frames made: the partial holds them
    resumed = cli("noise:32x32", "--frames", "3", "--seed", "9", "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert digest(out) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.gif"]


def test_a_second_ctrl_c_while_the_partial_is_written_leaves_no_half_file(cli, tmp_path, monkeypatch):
    import dreamer.zoom.session as session

    out = tmp_path / "z.gif"
    real = session.encode

    def encode(frames, output, **kwargs):
        raise KeyboardInterrupt

    restore = interrupt_after(monkeypatch, 1)
    monkeypatch.setattr(session, "encode", encode)
    stopped = CliRunner().invoke(dreamer.cli.main, ["zoom", "noise:32x32", "--frames", "4", "-o", str(out), *FAST])
    restore()
    monkeypatch.setattr(session, "encode", real)
    assert stopped.exit_code == 130
    assert not (tmp_path / "z.partial.gif").exists() and not out.exists()
    assert FrameStore(tmp_path / "z.gif.frames").count() == 2
    assert not [p for p in tmp_path.rglob(".dreamer-tmp-*")]
    assert not lock_path(out).exists()


def test_a_link_loop_as_output_is_one_line(cli, tmp_path):
    loop = tmp_path / "loop.gif"
    loop.symlink_to(loop)
    result = cli("noise:32x32", "--frames", "2", "-o", loop)
    assert result.exit_code == 2 and "already exists" in result.output  # a link is a file dreamer did not write
    assert loop.is_symlink()
    forced = cli("noise:32x32", "--frames", "2", "-o", loop, "--force")  # the named output: replaced
    assert forced.exit_code == 0, forced.output
    assert len(read_frames(loop)) == 2


import dreamer.cli  # noqa: E402  (used above through dreamer.cli.main)


def test_sigterm_stops_a_run_like_ctrl_c(cli, tmp_path, monkeypatch):
    """`kill`, `timeout` or a job scheduler: frames kept, partial written, lock released, exit 143."""
    out = tmp_path / "z.gif"
    before = signal.getsignal(signal.SIGTERM)
    during_frame(monkeypatch, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
    stopped = cli("noise:32x32", "--frames", "4", "-o", out)
    assert stopped.exit_code == 143, stopped.output
    assert "Terminated" in stopped.output and "partial video" in stopped.output
    assert len(read_frames(tmp_path / "z.partial.gif")) == 2
    assert not lock_path(out).exists() and not out.exists()
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is only there while frames are made


def test_empty_and_slash_outputs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for empty in ("", "  "):
        result = cli("noise:32x32", "--frames", "2", "-o", empty)
        assert result.exit_code == 2 and "-o needs a file or folder name" in result.output
    result = cli("noise:32x32", "--frames", "2", "-o", "videos.mp4/")  # a folder, as the slash says
    assert result.exit_code == 0, result.output
    assert len(read_frames(tmp_path / "videos.mp4" / "noise_32x32.zoom.mp4")) == 2


def test_another_outputs_lock_in_a_folder_does_not_make_it_foreign(cli, tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    (out / ".inner.gif.dreamer-lock").write_text("{}")  # a run writing frames/inner.gif holds it
    result = cli("noise:32x32", "--frames", "2", "-o", out)
    assert result.exit_code == 0, result.output
    assert (out / ".inner.gif.dreamer-lock").read_text() == "{}"


def test_a_full_disk_while_the_video_is_encoded_keeps_the_old_video_and_the_frames(cli, tmp_path, monkeypatch):
    import dreamer.io.video as video

    out = tmp_path / "z.gif"
    assert cli("noise:32x32", "--frames", "3", "-o", out).exit_code == 0
    before = digest(out)
    real = video._WRITERS["gif"]

    def full(first, frames, path, fps, kind):
        if not isinstance(path, (str, os.PathLike)):  # the in-memory probe before any work
            return real(first, frames, path, fps, kind)
        Path(path).write_bytes(b"GIF89a half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(video._WRITERS, "gif", full)
    failed = cli("noise:32x32", "--frames", "3", "--seed", "4", "-o", out, "--force")
    monkeypatch.setitem(video._WRITERS, "gif", real)
    assert failed.exit_code == 1 and "No space left on device" in failed.output
    assert "3 of 3 frames are in" in failed.output and "--resume" in failed.output
    assert digest(out) == before
    assert not [p for p in tmp_path.rglob(".dreamer-tmp-*")]
    resumed = cli("noise:32x32", "--frames", "3", "--seed", "4", "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert digest(out) != before and sorted(p.name for p in tmp_path.iterdir()) == ["z.gif"]
