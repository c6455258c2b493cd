"""Jobs files for `dreamer zoom --jobs` (dreamer.zoom.jobs): format, paths, and errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dreamer.errors import UsageError
from dreamer.zoom.jobs import JobsFileError, parse_jobs, parse_jobs_text


def test_lines_fields_quotes_comments_and_settings(tmp_path):
    jobs_file = tmp_path / "sub" / "jobs.txt"
    text = (
        "# SOURCE  PRESET  OUTPUT  [KEY=VALUE ...]\n"
        "\n"
        "photo.jpg\t-\tphoto.mp4\n"
        "noise:256x128  high-level  noise.gif  seed=7 frames=120 zoom=1.02:1.06  # a comment\n"
        "'my photo.png'  looks/deep.toml  \"out dir/my zoom.webp\"  layer=mixed3b layer=mixed4c=0.5 class=banana\n"
        "/abs/src.png  -  /abs/out  rotate=-0.5 shift=2,0 fps=24\n"
    )
    jobs = parse_jobs_text(text, jobs_file)
    assert [j.line for j in jobs] == [3, 4, 5, 6]
    base = tmp_path / "sub"

    photo, noise, mine, absolute = jobs
    assert photo.source == str(base / "photo.jpg") and photo.preset is None and photo.output == base / "photo.mp4"
    assert (photo.seed, photo.frames, photo.zoom, photo.layers) == (None, None, None, ())

    assert noise.source == "noise:256x128"  # not a path
    assert noise.preset == "high-level"  # a name: left for the preset loader
    assert (noise.seed, noise.frames, noise.zoom) == (7, 120, "1.02:1.06")

    assert mine.source == str(base / "my photo.png")
    assert mine.preset == str(base / "looks" / "deep.toml")  # a preset file: relative to the jobs file
    assert mine.output == base / "out dir" / "my zoom.webp"
    assert mine.layers == ("mixed3b", "mixed4c=0.5") and mine.classes == ("banana",)

    assert absolute.source == "/abs/src.png" and absolute.output == Path("/abs/out")
    assert (absolute.rotate, absolute.shift, absolute.fps) == ("-0.5", "2,0", 24.0)
    assert absolute.where == f"{jobs_file}:6"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("photo.jpg photo.mp4", "expected SOURCE PRESET OUTPUT"),
        ("photo.jpg - seed=3", "expected SOURCE PRESET OUTPUT"),
        ("photo.jpg - out.mp4 stray", "unexpected field 'stray'"),
        ("photo.jpg - out.mp4 frmaes=3", "unknown setting 'frmaes'"),
        ("photo.jpg - out.mp4 frames=ten", "frames='ten' is not a whole number"),
        ("photo.jpg - out.mp4 frames=0", "frames='0' must be at least 1"),
        ("photo.jpg - out.mp4 seed=-1", "seed='-1' must be at least 0"),
        ("photo.jpg - out.mp4 fps=0", "fps='0' must be a number > 0"),
        ("photo.jpg - out.mp4 fps=fast", "fps='fast' must be a number > 0"),
        ("photo.jpg - out.mp4 seed=1 seed=2", "seed is given twice"),
        ("photo.jpg - out.mp4 zoom=", "zoom= has no value"),
        ("'photo.jpg - out.mp4", "cannot split the line"),
        ("other.jpg - ./first.mp4", "output './first.mp4' is already written by line 2"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "jobs.txt"
    with pytest.raises(JobsFileError) as info:
        parse_jobs_text(f"# header\nfirst.jpg - first.mp4\n{line}\n", path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)
    assert info.value.line == 3 and info.value.path == path
    assert info.value.exit_code == 2


def test_unknown_setting_suggests_the_closest():
    with pytest.raises(JobsFileError) as info:
        parse_jobs_text("a.jpg - a.mp4 frmaes=3\n", "j.txt")
    assert "did you mean 'frames'?" in str(info.value)


def test_an_empty_file_is_an_error(tmp_path):
    with pytest.raises(JobsFileError, match="no jobs"):
        parse_jobs_text("# only comments\n\n", tmp_path / "jobs.txt")


def test_reading_the_file(tmp_path):
    path = tmp_path / "jobs.txt"
    path.write_text("a.jpg - a.gif\n", encoding="utf-8")
    assert [j.output for j in parse_jobs(path)] == [tmp_path / "a.gif"]
    with pytest.raises(UsageError, match="no such jobs file"):
        parse_jobs(tmp_path / "missing.txt")
    with pytest.raises(UsageError, match="is a folder"):
        parse_jobs(tmp_path)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9.jpg - a.gif\n".encode("latin-1"))
    with pytest.raises(JobsFileError, match="not UTF-8"):
        parse_jobs(tmp_path / "latin1.txt")
