"""Tests for dreamer.io.images: loading any image, noise sources, output checks, atomic saving."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps, features

from dreamer.io import images
from dreamer.errors import ImageError, OutputError, OutputExistsError, UsageError
from dreamer.io.images import (
    OUTPUT_FORMATS,
    check_output_path,
    default_output_path,
    from_pil,
    load_image,
    make_noise,
    parse_noise_source,
    read_metadata,
    resize,
    save_image,
    to_pil,
    to_uint8,
)


def noisy_rgb(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def assert_image_tensor(t: torch.Tensor, height: int, width: int) -> None:
    assert t.shape == (1, 3, height, width)
    assert t.dtype == torch.float32
    assert t.device.type == "cpu"
    assert 0.0 <= t.min().item() and t.max().item() <= 1.0


# --- loading: modes --------------------------------------------------------------------


def test_rgb_png_values(tmp_path):
    img = noisy_rgb(7, 5)
    img.save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    assert_image_tensor(t, 5, 7)
    expected = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
    assert torch.allclose(t[0], expected)


def test_grayscale_l_is_repeated_in_three_channels(tmp_path):
    Image.new("L", (4, 3), 200).save(tmp_path / "g.png")
    t = load_image(tmp_path / "g.png")
    assert_image_tensor(t, 3, 4)
    assert torch.allclose(t, torch.full_like(t, 200 / 255))


def test_sixteen_bit_png_keeps_precision(tmp_path):
    data = np.array([[0, 32768, 65535], [1000, 1001, 1002]], dtype=np.uint16)
    Image.fromarray(data).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as check:
        assert check.mode.startswith("I")  # Pillow really kept 16 bits
    t = load_image(tmp_path / "g16.png")
    assert_image_tensor(t, 2, 3)
    assert t[0, 0, 0, 0].item() == 0.0
    assert t[0, 0, 0, 2].item() == pytest.approx(1.0)
    assert t[0, 0, 0, 1].item() == pytest.approx(0.5, abs=1e-4)
    # 1000 and 1001 differ by 1/65535; an 8-bit detour would merge them
    assert t[0, 0, 1, 0] < t[0, 0, 1, 1] < t[0, 0, 1, 2]
    assert (t[0, 0, 1, 1] - t[0, 0, 1, 0]).item() == pytest.approx(1 / 65535, rel=1e-2)


def write_png16(path, array: np.ndarray, *, transparency: tuple[int, int, int] | None = None) -> None:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour): `array` (H, W, C) uint16,
    C = 2 (grey + alpha), 3 (RGB) or 4 (RGBA); rows unfiltered, one zlib stream."""
    import struct
    import zlib

    h, w, c = array.shape
    raw = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, {2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    trns = chunk(b"tRNS", struct.pack(">HHH", *transparency)) if transparency else b""
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + trns + chunk(b"IDAT", zlib.compress(raw))
                           + chunk(b"IEND", b""))


def test_sixteen_bit_rgb_png_keeps_precision(tmp_path):
    """Pillow opens RGB48 as 8-bit; dreamer must not: neighbouring 16-bit values stay apart."""
    data = np.zeros((2, 3, 3), np.uint16)
    data[0] = [[0, 65535, 32768], [1000, 1001, 1002], [65535, 0, 7]]
    data[1] = [[300, 301, 302], [40000, 40001, 40002], [1, 2, 3]]
    write_png16(tmp_path / "rgb48.png", data)
    with Image.open(tmp_path / "rgb48.png") as check:
        assert check.mode == "RGB"  # what Pillow alone would give: 8 bits
    t = load_image(tmp_path / "rgb48.png")
    assert_image_tensor(t, 2, 3)
    expected = torch.from_numpy(data.astype(np.float32) / 65535).permute(2, 0, 1)[None]
    assert torch.allclose(t, expected, atol=1e-7, rtol=0)
    assert t[0, 0, 1, 0] < t[0, 1, 1, 0] < t[0, 2, 1, 0]  # 300, 301, 302: one 8-bit level apart is 257


def test_sixteen_bit_rgba_and_grey_alpha_pngs_composite_over_grey(tmp_path):
    rgba = np.array([[[65535, 0, 0, 65535], [0, 65535, 0, 0], [1000, 1001, 1002, 32768]]], np.uint16)
    write_png16(tmp_path / "rgba64.png", rgba)
    t = load_image(tmp_path / "rgba64.png")
    assert_image_tensor(t, 1, 3)
    assert t[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert t[0, :, 0, 1].tolist() == pytest.approx([0.5, 0.5, 0.5])
    a = 32768 / 65535
    assert t[0, :, 0, 2].tolist() == pytest.approx([v / 65535 * a + 0.5 * (1 - a) for v in (1000, 1001, 1002)], abs=1e-6)
    la = np.array([[[20000, 65535], [20001, 65535], [0, 0]]], np.uint16)
    write_png16(tmp_path / "la16.png", la)
    t = load_image(tmp_path / "la16.png")
    assert t[0, :, 0, 0].tolist() == pytest.approx([20000 / 65535] * 3, abs=1e-7)
    assert t[0, 0, 0, 1] > t[0, 0, 0, 0]
    assert t[0, :, 0, 2].tolist() == pytest.approx([0.5] * 3)


def test_sixteen_bit_colour_key_is_grey(tmp_path):
    data = np.array([[[1, 2, 3], [1, 2, 4]]], np.uint16)
    write_png16(tmp_path / "key.png", data, transparency=(1, 2, 3))
    t = load_image(tmp_path / "key.png")
    assert t[0, :, 0, 0].tolist() == pytest.approx([0.5] * 3)
    assert t[0, :, 0, 1].tolist() == pytest.approx([1 / 65535, 2 / 65535, 4 / 65535], abs=1e-9)


def test_sixteen_bit_rgb_tiff_keeps_precision(tmp_path):
    av = pytest.importorskip("av")
    data = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1001 + 7).astype(np.uint16)
    with av.open(str(tmp_path / "rgb48.tif"), "w", format="image2") as container:
        stream = container.add_stream("tiff", rate=1)
        stream.width, stream.height, stream.pix_fmt = 5, 4, "rgb48le"
        frame = av.VideoFrame.from_ndarray(data, format="rgb48le")
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    t = load_image(tmp_path / "rgb48.tif")
    expected = torch.from_numpy(data.astype(np.float32) / 65535).permute(2, 0, 1)[None]
    assert torch.allclose(t, expected, atol=1e-7, rtol=0)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_sixteen_bit_images_are_turned_upright_like_the_others(orientation):
    from dreamer.io.images import _oriented

    img = noisy_rgb(5, 3)
    exif = img.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", exif=exif.tobytes())
    with Image.open(buffer) as tagged:
        tagged.load()
        expected = from_pil(ImageOps.exif_transpose(tagged))
        got = _oriented(from_pil(tagged), tagged)
    assert torch.equal(got, expected)


def test_truncated_sixteen_bit_png_is_an_image_error(tmp_path):
    write_png16(tmp_path / "rgb48.png", np.full((8, 8, 3), 1234, np.uint16))
    data = (tmp_path / "rgb48.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) - 30])
    with pytest.raises(ImageError):
        load_image(tmp_path / "cut.png")


def test_32_bit_integer_is_stretched_not_clipped(tmp_path):
    data = np.array([[0, 100_000, 200_000]], dtype=np.int32)
    Image.fromarray(data, mode="I").save(tmp_path / "i32.tif")
    t = load_image(tmp_path / "i32.tif")
    assert_image_tensor(t, 1, 3)
    assert t[0, 0, 0].tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_float_image_in_unit_range_is_kept(tmp_path):
    data = np.array([[0.0, 0.25, 1.0]], dtype=np.float32)
    Image.fromarray(data, mode="F").save(tmp_path / "f.tif")
    t = load_image(tmp_path / "f.tif")
    assert t[0, 1, 0].tolist() == pytest.approx([0.0, 0.25, 1.0])


def test_palette_without_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255])
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png")
    t = load_image(tmp_path / "p.png")
    assert_image_tensor(t, 1, 2)
    assert t[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert t[0, :, 0, 1].tolist() == [0.0, 0.0, 1.0]


def test_palette_with_transparency_is_flattened_on_grey(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255])
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0
    img.save(tmp_path / "pt.png", transparency=0)
    t = load_image(tmp_path / "pt.png")
    assert t[0, :, 0, 0].tolist() == [0.5, 0.5, 0.5]
    assert t[0, :, 0, 1].tolist() == [0.0, 0.0, 1.0]


def test_cmyk(tmp_path):
    img = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    img.putpixel((1, 0), (0, 255, 255, 0))
    img.save(tmp_path / "c.jpg", quality=100)
    t = load_image(tmp_path / "c.jpg")
    assert_image_tensor(t, 1, 2)
    assert t[0, :, 0, 0].tolist() == pytest.approx([1.0, 1.0, 1.0], abs=0.05)
    assert t[0, :, 0, 1].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=0.1)


def test_rgba_alpha_is_composited_over_mid_grey(tmp_path):
    img = Image.new("RGBA", (3, 1))
    img.putdata([(255, 0, 0, 0), (255, 0, 0, 255), (255, 255, 255, 128)])
    img.save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    assert_image_tensor(t, 1, 3)
    assert t[0, :, 0, 0].tolist() == [0.5, 0.5, 0.5]  # fully transparent -> grey
    assert t[0, :, 0, 1].tolist() == [1.0, 0.0, 0.0]  # opaque -> unchanged
    half = 128 / 255
    assert t[0, 0, 0, 2].item() == pytest.approx(half + 0.5 * (1 - half))


def test_la(tmp_path):
    img = Image.new("LA", (2, 1))
    img.putdata([(100, 0), (100, 255)])
    img.save(tmp_path / "la.png")
    t = load_image(tmp_path / "la.png")
    assert t[0, :, 0, 0].tolist() == [0.5, 0.5, 0.5]
    assert t[0, :, 0, 1].tolist() == pytest.approx([100 / 255] * 3)


def test_from_pil_returns_new_cpu_tensor():
    img = noisy_rgb(4, 2)
    t = from_pil(img)
    assert_image_tensor(t, 2, 4)
    assert t.is_contiguous()


# --- loading: orientation and size -----------------------------------------------------


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 8, 8))  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    t = load_image(tmp_path / "o.jpg")
    assert_image_tensor(t, 40, 20)
    # after a clockwise turn the stored top-left corner is at the top right
    assert t[0, 0, 2, 17].item() > 0.8 and t[0, 2, 2, 17].item() < 0.2
    assert t[0, 0, 2, 2].item() < 0.2


@pytest.mark.parametrize(("size", "expected"), [(50, (25, 50)), (400, (200, 400)), (200, (100, 200))])
def test_size_sets_the_longest_side(tmp_path, size, expected):
    noisy_rgb(200, 100).save(tmp_path / "w.png")
    t = load_image(tmp_path / "w.png", size=size)
    assert_image_tensor(t, *expected)


def test_size_on_a_tall_image(tmp_path):
    noisy_rgb(30, 90).save(tmp_path / "t.png")
    assert load_image(tmp_path / "t.png", size=45).shape == (1, 3, 45, 15)


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_bad_size_is_a_usage_error(tmp_path, size):
    noisy_rgb(4, 4).save(tmp_path / "a.png")
    with pytest.raises(UsageError, match="size"):
        load_image(tmp_path / "a.png", size=size)


# --- loading: errors -------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="no such file") as info:
        load_image(tmp_path / "nope.png")
    assert "nope.png" in str(info.value)


def test_directory(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        load_image(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="is empty") as info:
        load_image(tmp_path / "empty.png")
    assert "empty.png" in str(info.value)


def test_text_file(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello, not an image\n")
    with pytest.raises(ImageError, match="is not an image Pillow can read") as info:
        load_image(tmp_path / "notes.jpg")
    assert "notes.jpg" in str(info.value)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_file(tmp_path, ext):
    path = tmp_path / f"cut{ext}"
    noisy_rgb(64, 64).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt") as info:
        load_image(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message


def test_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    noisy_rgb(100, 50).save(tmp_path / "big.png")

    def no_decoding(self):
        raise AssertionError("pixels decoded before the size check")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / "big.png", max_pixels=1000)
    message = str(info.value)
    assert "100x50" in message and "5000 pixels" in message and "1000" in message
    assert "pass --max-pixels N (or max_pixels= in Python)" in message
    assert "big.png" in message and "\n" not in message


def test_raising_max_pixels_beats_pillows_own_limit(tmp_path, monkeypatch):
    noisy_rgb(100, 50).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # as if Pillow's default were tiny
    assert load_image(tmp_path / "big.png", max_pixels=10_000).shape == (1, 3, 50, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000  # Pillow's setting is restored


@pytest.mark.parametrize("limit", [50_000, 40_000])  # Pillow warns above the limit, fails above twice it
def test_pillows_checks_while_decoding_use_our_limit(tmp_path, monkeypatch, limit):
    noisy_rgb(10, 10).save(tmp_path / "a.png")
    original = ImageFile.ImageFile.load

    def load(self):
        Image._decompression_bomb_check((300, 300))  # as a GIF frame or a TIFF tile would
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with pytest.raises(ImageError, match=rf"a.png has 90000 pixels, more than the limit of {limit} pixels"):
        load_image(tmp_path / "a.png", max_pixels=limit)
    assert load_image(tmp_path / "a.png", max_pixels=90_000).shape == (1, 3, 10, 10)


def test_default_max_pixels_allows_ordinary_images(tmp_path):
    noisy_rgb(10, 10).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").shape == (1, 3, 10, 10)
    assert images.DEFAULT_MAX_PIXELS == 100_000_000


# --- tensors <-> pixels ----------------------------------------------------------------


def test_to_uint8_clamps_and_rounds():
    t = torch.tensor([-0.5, 0.2, 0.5, 1.5, float("nan")]).reshape(1, 1, 5).expand(3, 1, 5)
    out = to_uint8(t)
    assert out.shape == (1, 5, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 51, 128, 255, 0]


def test_to_pil_accepts_batched_and_unbatched():
    t = torch.rand(1, 3, 6, 9)
    assert to_pil(t).size == (9, 6)
    assert to_pil(t[0]).mode == "RGB"
    assert np.array_equal(np.asarray(to_pil(t)), to_uint8(t[0]))


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (4, 4), (1, 4, 4, 4)])
def test_to_uint8_rejects_other_shapes(shape):
    with pytest.raises(ValueError):
        to_uint8(torch.rand(shape))


def test_resize_shape_range_and_constant():
    t = torch.rand(2, 3, 40, 60)
    for size in [(20, 30), (80, 120), (20, 120)]:
        out = resize(t, size)
        assert out.shape == (2, 3, *size)
        assert 0.0 <= out.min().item() and out.max().item() <= 1.0
    noise = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert resize(noise, (16, 16)).std() < 0.25 * noise.std()  # antialiased: averages, not samples
    grey = torch.full((1, 3, 40, 60), 0.3)
    assert torch.allclose(resize(grey, (13, 17)), grey[..., :13, :17], atol=1e-5)


# --- noise -----------------------------------------------------------------------------


def test_parse_noise_source():
    assert parse_noise_source("noise:512x256") == (256, 512)  # WIDTHxHEIGHT -> (height, width)
    assert parse_noise_source("noise:1x16384") == (16384, 1)
    assert parse_noise_source("photo.jpg") is None
    assert parse_noise_source("my-noise:1x1.png") is None


@pytest.mark.parametrize(
    "text", ["noise:", "noise:abc", "noise:0x10", "noise:10x0", "noise:20000x10", "noise:5x5x5", "noise:-5x5"]
)
def test_parse_noise_source_rejects_malformed(text):
    with pytest.raises(UsageError, match="WIDTHxHEIGHT"):
        parse_noise_source(text)


def test_make_noise_is_deterministic_and_in_range():
    a = make_noise((16, 24), seed=7, batch=2, amplitude=0.1)
    assert a.shape == (2, 3, 16, 24) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, make_noise((16, 24), seed=7, batch=2, amplitude=0.1))
    assert not torch.equal(a, make_noise((16, 24), seed=8, batch=2, amplitude=0.1))
    assert torch.equal(a[:1], make_noise((16, 24), seed=7))
    assert not torch.equal(a[0], a[1])
    assert a.min().item() >= 0.4 - 1e-6 and a.max().item() <= 0.6 + 1e-6
    assert a.mean().item() == pytest.approx(0.5, abs=0.01)
    assert a.std().item() > 0.03  # really noisy, not flat grey
    loud = make_noise((8, 8), seed=1, amplitude=2.0)
    assert loud.min().item() == 0.0 and loud.max().item() == 1.0


# --- output paths ----------------------------------------------------------------------


def test_default_output_path(tmp_path):
    assert default_output_path(tmp_path / "photo.jpg") == tmp_path / "photo.dream.png"
    assert default_output_path("a/b.c.png", suffix="-x", ext=".jpg").as_posix() == "a/b.c-x.jpg"


def test_output_formats():
    assert OUTPUT_FORMATS[".png"] == "PNG" and OUTPUT_FORMATS[".jpeg"] == "JPEG"
    assert set(OUTPUT_FORMATS) == {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}


def test_check_output_path_accepts_a_new_file(tmp_path):
    assert check_output_path(str(tmp_path / "out.png"), force=False) == tmp_path / "out.png"
    assert check_output_path(tmp_path / "OUT.JPG", force=False) == tmp_path / "OUT.JPG"


@pytest.mark.parametrize("name", ["out.gif", "out", "out.png.bak"])
def test_check_output_path_unknown_extension(tmp_path, name):
    with pytest.raises(UsageError, match=r"\.png") as info:
        check_output_path(tmp_path / name, force=True)
    assert not isinstance(info.value, OutputExistsError)


def test_check_output_path_same_as_input(tmp_path):
    source = tmp_path / "in.png"
    noisy_rgb(4, 4).save(source)
    with pytest.raises(OutputExistsError, match="would overwrite the input"):
        check_output_path(source, force=True, inputs=[source])
    with pytest.raises(OutputExistsError, match="would overwrite the input"):
        check_output_path(tmp_path / "sub" / ".." / "in.png", force=True, inputs=[str(source)])


def test_check_output_path_exists(tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError) as info:
        check_output_path(out, force=False)
    assert "--force" in str(info.value) and "out.png" in str(info.value)
    assert check_output_path(out, force=True) == out


def test_check_output_path_is_a_directory(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputError, match="directory"):
        check_output_path(tmp_path / "dir.png", force=True)


def test_check_output_path_missing_parent(tmp_path):
    with pytest.raises(OutputError) as info:
        check_output_path(tmp_path / "missing" / "out.png", force=False)
    assert "missing" in str(info.value) and "does not exist" in str(info.value)


def test_check_output_path_parent_is_a_file(tmp_path):
    (tmp_path / "somefile.txt").write_text("x")
    with pytest.raises(OutputError, match="somefile.txt"):
        check_output_path(tmp_path / "somefile.txt" / "out.png", force=False)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_check_output_path_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_output_path(locked / "out.png", force=False)
    finally:
        locked.chmod(stat.S_IRWXU)


# --- saving ----------------------------------------------------------------------------


def test_png_round_trip_with_metadata(tmp_path):
    t = torch.rand(1, 3, 12, 17)
    meta = {"dreamer:config": '{"layer": "mixed4c", "steps": 10}', "seed": "42", "note": "ünïcødé ✓"}
    out = save_image(t, tmp_path / "out.png", metadata=meta)
    assert out == tmp_path / "out.png"
    back = load_image(out)
    assert back.shape == t.shape
    assert (back - t).abs().max().item() <= 0.5 / 255 + 1e-6
    assert read_metadata(out) == meta
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # no temporary files left


def test_saved_file_has_ordinary_permissions(tmp_path):
    out = save_image(torch.rand(3, 4, 4), tmp_path / "out.png")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".tif", ".tiff", ".webp"])
def test_other_formats(tmp_path, ext):
    if ext == ".webp" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    t = torch.rand(1, 3, 10, 14)
    out = save_image(t, tmp_path / f"out{ext}", metadata={"seed": "3"})
    with Image.open(out) as img:
        assert img.format == OUTPUT_FORMATS[ext] and img.size == (14, 10)
    assert load_image(out).shape == t.shape
    assert read_metadata(out) == {"seed": "3"}
    assert sorted(os.listdir(tmp_path)) == [f"out{ext}"]


def test_save_refuses_existing_without_force(tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        save_image(torch.rand(3, 4, 4), out)
    assert out.read_bytes() == b"precious"
    save_image(torch.rand(3, 4, 4), out, force=True)
    assert load_image(out).shape == (1, 3, 4, 4)


def test_save_refuses_to_overwrite_its_input(tmp_path):
    source = tmp_path / "in.png"
    noisy_rgb(4, 4).save(source)
    before = source.read_bytes()
    with pytest.raises(OutputExistsError):
        save_image(torch.rand(3, 4, 4), source, force=True, inputs=[source])
    assert source.read_bytes() == before


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    def half_write(self, fp, format=None, **params):
        fp.write(b"\x89PNG half written")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", half_write)
    with pytest.raises(OutputError, match="disk full"):
        save_image(torch.rand(3, 4, 4), tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")

    def crash(self, fp, format=None, **params):
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.rand(3, 4, 4), out, force=True)
    assert out.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.png"]


def test_read_metadata_of_plain_images(tmp_path):
    noisy_rgb(4, 4).save(tmp_path / "plain.png")
    assert read_metadata(tmp_path / "plain.png") == {}
    buffer = io.BytesIO()
    noisy_rgb(4, 4).save(buffer, format="JPEG")
    (tmp_path / "plain.jpg").write_bytes(buffer.getvalue())
    assert read_metadata(tmp_path / "plain.jpg") == {}
