"""Top images: folder scanning, the activation cache, ranking and receptive-field crops."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from dreamer.errors import ConfigError, ImageError, UsageError
from dreamer.io.images import save_image
from dreamer.visualize import top_images as T
from dreamer.visualize.layers import feature_maps



def _picture(seed: int, hw: tuple[int, int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=hw, mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture
def folder(tmp_path):
    """Five square 64x64 PNGs (so the scan at size 64 has no grey margin), a non-image, a hidden file."""
    d = tmp_path / "pics"
    d.mkdir()
    for i in range(5):
        save_image(_picture(i, (64, 64)), d / f"img{i}.png")
    (d / "notes.txt").write_text("not an image")
    (d / ".hidden.png").write_bytes(b"")
    return d


class _Counter:
    """Counts forward passes through the network's first layer (images, not calls)."""

    def __init__(self, network):
        self.images = 0
        self.handle = network.module.conv1.register_forward_hook(self._hook)

    def _hook(self, _m, inputs, _out):
        self.images += inputs[0].shape[0]

    def close(self):
        self.handle.remove()


def test_list_images_finds_images_only(folder, tmp_path):
    found = T.list_images(folder)
    assert [p.name for p in found] == [f"img{i}.png" for i in range(5)]
    with pytest.raises(UsageError, match="no such folder"):
        T.list_images(tmp_path / "missing")
    with pytest.raises(UsageError, match="not a folder"):
        T.list_images(found[0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        T.list_images(tmp_path / "empty")
    sub = folder / "sub"
    sub.mkdir()
    save_image(_picture(9, (40, 40)), sub / "deep.png")
    assert len(T.list_images(folder)) == 5
    assert len(T.list_images(folder, recursive=True)) == 6


def test_top_images_order_matches_direct_activations(network, folder, tmp_path):
    paths = T.list_images(folder)
    scan = T.scan_images(network, paths, "mixed3b", size=64, batch_size=2)
    assert scan.peak.shape == (5, 480) and scan.computed == 5 and scan.reused == 0
    direct = torch.cat(
        [feature_maps(network, _load(p), "inception3b").cpu() for p in paths]
    )
    peaks = direct.flatten(2).amax(2)  # (5, 480)
    assert torch.allclose(scan.peak, peaks, atol=1e-4)
    # a channel that tells the images apart
    channel = int((peaks.max(0).values - peaks.min(0).values).argmax())
    hits = T.top_units(scan, channel, k=3)
    expected = torch.argsort(peaks[:, channel], descending=True)[:3].tolist()
    assert [h.path for h in hits] == [paths[i] for i in expected]
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].value == pytest.approx(float(peaks[expected[0], channel]), rel=1e-4)
    # the recorded position holds the peak
    fh, fw = scan.feature_hw
    i = expected[0]
    y, x = hits[0].position
    assert float(direct[i, channel, y, x]) == pytest.approx(float(peaks[i, channel]), rel=1e-4)
    with pytest.raises(ConfigError):
        T.top_units(scan, 480)


def _load(path):
    from dreamer.io.images import load_image

    return load_image(path, size=64)


def test_cache_is_reused_for_another_channel_and_updated_for_changed_files(network, folder, tmp_path):
    paths = T.list_images(folder)
    cache = T.cache_file_for(tmp_path / "cache", network, "mixed3a", 64, folder)
    first = T.scan_images(network, paths, "mixed3a", size=64, batch_size=4, cache_file=cache)
    assert cache.is_file() and first.computed == 5
    counter = _Counter(network)
    try:
        second = T.scan_images(network, paths, "mixed3a:7", size=64, cache_file=cache)
        assert counter.images == 0  # no forward pass at all
        assert second.computed == 0 and second.reused == 5
        assert torch.equal(second.peak, first.peak) and torch.equal(second.argmax, first.argmax)
        # change one file: only it is run again
        save_image(_picture(99, (64, 64)), paths[2], force=True)
        os.utime(paths[2], ns=(1, 10**18))  # a clearly different mtime
        third = T.scan_images(network, paths, "mixed3a", size=64, cache_file=cache)
        assert counter.images == 1 and third.computed == 1 and third.reused == 4
        assert not torch.equal(third.peak[2], first.peak[2])
        assert torch.equal(third.peak[[0, 1, 3, 4]], first.peak[[0, 1, 3, 4]])
    finally:
        counter.close()
    # the key names model, weights, layer and size
    assert T.cache_file_for(tmp_path / "cache", network, "mixed3b", 64, folder) != cache
    assert T.cache_file_for(tmp_path / "cache", network, "mixed3a", 96, folder) != cache
    assert T.cache_file_for(tmp_path / "cache", network, "mixed3a:5", 64, folder) == cache


def test_interrupted_scan_resumes_from_the_cache(network, folder, tmp_path):
    paths = T.list_images(folder)
    cache = tmp_path / "c.npz"

    def stop_after_first_batch(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.scan_images(network, paths, "mixed3a", size=64, batch_size=2, cache_file=cache, progress=stop_after_first_batch)
    resumed = T.scan_images(network, paths, "mixed3a", size=64, batch_size=2, cache_file=cache)
    assert resumed.reused == 2 and resumed.computed == 3


def test_unreadable_images_are_skipped_and_reported(network, folder, tmp_path):
    bad = folder / "broken.png"
    bad.write_bytes(b"this is not a png")
    paths = T.list_images(folder)
    scan = T.scan_images(network, paths, "mixed3a", size=64)
    assert bad not in scan.paths and len(scan.paths) == 5
    assert [p for p, _ in scan.failed] == [bad]


def test_scan_refuses_layers_without_maps(network, folder):
    with pytest.raises(UsageError, match="no spatial maps"):
        T.scan_images(network, T.list_images(folder), "logits", size=64)


def test_non_square_images_peak_only_on_the_image(network, tmp_path):
    d = tmp_path / "wide"
    d.mkdir()
    save_image(_picture(3, (32, 64)), d / "wide.png")  # scanned as 32x64 inside 64x64
    scan = T.scan_images(network, T.list_images(d), "mixed3a", size=64)
    fh, fw = scan.feature_hw
    rows = scan.argmax[0] // fw
    centres = (rows.float() + 0.5) * 64 / fh
    assert (centres < 32).all()  # never in the grey margin below the image
    assert tuple(scan.scaled_hw[0].tolist()) == (32, 64)
    assert tuple(scan.original_hw[0].tolist()) == (32, 64)


def test_unit_box_and_crop():
    box = T.unit_box((0, 1), (4, 4), 64, 20)
    assert box == (-2.0, 14.0, 18.0, 34.0)  # centred on (8, 24), 20 px square
    scaled = T.unit_box((0, 1), (4, 4), 64, 20, scale=2.0)
    assert scaled == tuple(2 * v for v in box)
    image = torch.zeros(1, 3, 10, 10)
    image[:, :, :5, :5] = 1.0
    out = T.crop(image, (-5, -5, 5, 5), (10, 10))
    assert out.shape == (1, 3, 10, 10)
    assert torch.allclose(out[0, :, 0, 0], torch.full((3,), 0.5))  # outside: grey
    assert torch.allclose(out[0, :, 7, 7], torch.ones(3))  # inside: the image's white corner


def test_top_images_sheet(network, folder):
    from dreamer.visualize.grid import grid_layout

    scan = T.scan_images(network, T.list_images(folder), "mixed3a", size=64)
    sheet, hits = T.top_images_sheet(scan, 3, top=4, tile=40)
    assert len(hits) == 4
    layout = grid_layout(4, (82, 40), labelled=True, title=True)  # image above patch, 2 px apart
    assert tuple(sheet.shape) == (3, *layout.size)
    assert sheet.min() >= 0 and sheet.max() <= 1
