"""The visualisation commands end to end (in-process, random weights, tiny images)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dreamer.cli import main
from dreamer.io.images import load_image, read_metadata, save_image
from dreamer.io.metadata import parse_metadata



@pytest.fixture
def photo(tmp_path, image):
    path = tmp_path / "photo.png"
    save_image(image, path)
    return path


def run(*args: str):
    result = CliRunner().invoke(main, [*args, "--weights", "random", "--quiet"], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def record(path):
    return parse_metadata(read_metadata(path))


def test_activations_writes_a_sheet_beside_the_image(photo):
    result = run("activations", str(photo), "--layer", "mixed3a", "--top", "4", "--cell", "40")
    assert result.exit_code == 0, result.output
    out = photo.with_name("photo.activations.mixed3a.png")
    assert out.is_file()
    meta = record(out)
    assert meta["command"] == "activations" and meta["layer"] == "mixed3a" and len(meta["channels"]) == 4
    assert meta["weights"] == "random:0"
    # the same again keeps the first and takes the next free name; -o to an existing file is
    # refused; --force overwrites the plain name
    again = run("activations", str(photo), "--layer", "mixed3a", "--top", "4", "--cell", "40")
    assert again.exit_code == 0 and photo.with_name("photo.activations.mixed3a-2.png").is_file()
    assert len(record(out)["channels"]) == 4
    refused = run("activations", str(photo), "--layer", "mixed3a", "--cell", "40", "-o", str(out))
    assert refused.exit_code == 2 and "already exists" in refused.output
    assert run("activations", str(photo), "--layer", "mixed3a:0-2", "-f", "--cell", "40").exit_code == 0
    assert record(out)["channels"] == [0, 1, 2]
    assert not photo.with_name("photo.activations.mixed3a-3.png").exists()


def test_filters_default_and_deeper_layers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("filters")
    assert result.exit_code == 0, result.output
    meta = record(tmp_path / "filters.conv1.png")
    assert meta["shape"] == [64, 3, 7, 7] and meta["layer"] == "conv1"
    refused = run("filters", "--layer", "conv3")
    assert refused.exit_code == 2 and "input channels" in refused.output and "conv3:N" in refused.output
    block = run("filters", "--layer", "mixed4c")
    assert block.exit_code == 2 and "block of 6 convolutions" in block.output
    assert run("filters", "--layer", "conv3:7", "-o", "f.png").exit_code == 0
    assert record(tmp_path / "f.png")["filter"] == 7
    assert run("filters", "--layer", "conv3:999").exit_code == 2


def test_occlusion_and_deconv_write_pictures(photo):
    result = run("occlusion", str(photo), "--patch", "32", "--stride", "24", "--class", "banana", "--size", "96")
    assert result.exit_code == 0, result.output
    meta = record(photo.with_name("photo.occlusion.banana.png"))
    # scaled to 77x96: rows 0, 24, 45; columns 0, 24, 48, 64
    assert meta["class_index"] == 954 and meta["grid"] == [3, 4]
    plain = run("occlusion", str(photo), "--patch", "64", "--plain", "--size", "0", "-o", str(photo.with_name("o.png")))
    assert plain.exit_code == 0, plain.output
    assert load_image(photo.with_name("o.png")).shape == (1, 3, 64, 80)

    result = run("deconv", str(photo), "--layer", "mixed3a:5", "--plain")
    assert result.exit_code == 0, result.output
    out = photo.with_name("photo.deconv.mixed3a_5.png")
    assert load_image(out).shape == (1, 3, 64, 80)
    assert record(out)["rule"] == "guided"


def test_top_images_command_uses_its_cache(tmp_path, image):
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(3):
        save_image(image.roll(10 * i, dims=3), pics / f"p{i}.png")
    args = ("--size", "64", "--cell", "40", "--cache", str(tmp_path / "cache"))
    result = run("top-images", str(pics), "--layer", "mixed3a:3", "--top", "2", *args)
    assert result.exit_code == 0, result.output
    meta = record(tmp_path / "pics.top.mixed3a_3.png")
    assert meta["channel"] == 3 and len(meta["top"]) == 2 and meta["scanned"] == 3
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    result = run("top-images", str(pics), "--layer", "mixed3a:4", *args)
    assert result.exit_code == 0
    assert len(record(tmp_path / "pics.top.mixed3a_4.png")["top"]) == 3  # --top 9 capped at 3 images


def test_channels_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(
        "channels", "--layer", "mixed3a", "--from", "2", "--count", "2", "--size", "32",
        "--steps", "1", "--param", "pixel", "--octaves", "1",
    )
    assert result.exit_code == 0, result.output
    meta = record(tmp_path / "channels.mixed3a.2-3.png")
    assert meta["channels"] == [2, 3] and meta["config"]["param"] == "pixel"
    assert meta["config"]["transforms"] == "standard"
    assert run("channels", "--layer", "mixed3a", "--from", "255", "--count", "2").exit_code == 2


@pytest.mark.parametrize(
    "args, code, text",
    [
        (("activations", "missing.png"), 2, "no such file"),
        (("activations", "{dir}"), 2, "directory"),
        (("activations", "{bad}"), 1, "not an image"),
        (("activations", "{photo}", "--layer", "mixed4x"), 2, "did you mean"),
        (("activations", "{photo}", "--layer", "logits"), 2, "no spatial maps"),
        (("activations", "{photo}", "--layer", "mixed4c:512"), 2, "channels 0-511"),
        (("activations", "{photo}", "--layer", "mixed4c:x"), 2, "channel"),
        (("deconv", "{photo}", "--layer", "mixed4c"), 2, "needs one channel"),
        (("deconv", "{photo}", "--layer", "mixed4c:600"), 2, "channels 0-511"),
        (("deconv", "{bad}", "--layer", "mixed4c:1"), 1, "not an image"),
        (("occlusion", "{photo}", "--class", "pomeranain"), 2, "Pomeranian"),
        (("occlusion", "{photo}", "--class", "1000"), 2, "class"),
        (("occlusion", "{photo}", "--patch", "0"), 2, "patch"),
        (("top-images", "{tmp}/nowhere", "--layer", "mixed4c:1"), 2, "no such folder"),
        (("top-images", "{photo}", "--layer", "mixed4c:1"), 2, "not a folder"),
        (("top-images", "{dir}", "--layer", "mixed4c:1"), 1, "no images"),
        (("top-images", "{dir}", "--layer", "mixed4c"), 2, "needs one channel"),
        (("top-images", "{dir}", "--layer", "logits:3"), 2, "no spatial maps"),
        (("channels", "--layer", "mixed9z"), 2, "unknown layer"),
    ],
)
def test_bad_inputs(tmp_path, photo, args, code, text):
    (tmp_path / "dir").mkdir()
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    values = {"photo": str(photo), "dir": str(tmp_path / "dir"), "bad": str(bad), "tmp": str(tmp_path)}
    result = run(*(a.format(**values) for a in args))
    assert result.exit_code == code, result.output
    assert text.lower() in result.output.lower()
    assert not list(tmp_path.glob("*.activations.*")) and not list(tmp_path.glob("*.deconv.*"))


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    for name in ("activations", "filters", "top-images", "occlusion", "deconv", "channels"):
        assert name in result.output


def test_top_images_warns_when_the_unit_is_silent_on_every_image(tmp_path, image, monkeypatch, network):
    import dreamer.visualize.top_images as T
    from dreamer.visualize.activations import activation_maps

    # a unit that fires on these images (the same random network as --weights random)
    unit = int(activation_maps(network, image, "mixed3a").flatten(1).amax(1).argmax())

    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(2):
        save_image(image.roll(10 * i, dims=3), pics / f"p{i}.png")
    original = T.top_images_sheet

    def silent(scan, channel, **kwargs):
        scan.peak[:, channel] = 0.0  # the unit never fires on these images
        return original(scan, channel, **kwargs)

    args = ["top-images", str(pics), "--layer", f"mixed3a:{unit}", "--size", "64", "--no-cache",
            "--weights", "random"]
    loud = CliRunner().invoke(main, args, catch_exceptions=False)
    assert loud.exit_code == 0, loud.output
    assert "does not fire" not in loud.output
    monkeypatch.setattr(T, "top_images_sheet", silent)
    quiet_unit = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "silent.png")], catch_exceptions=False)
    assert quiet_unit.exit_code == 0, quiet_unit.output
    assert f"mixed3a:{unit} does not fire on any of the 2 images" in quiet_unit.output
