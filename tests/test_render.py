"""Tests for the feature-visualisation render loop and the image parameterisations."""

from __future__ import annotations

import pytest
import torch

from dreamer.config import DreamConfig
from dreamer.loops.deepdream import dream
from dreamer.errors import ImageError
from dreamer.io.images import make_noise
from dreamer.loops.parameterization import EPS, FourierImage, PixelImage, make_parameterization
from dreamer.loops.render import RENDER_ANGLES, RENDER_SCALES, make_render_transform, render

BANANA = 954


def cheap_config(**changes) -> DreamConfig:
    """A shallow objective (mixed3a): a fraction of a full forward pass, for tests of mechanics."""
    return fft_config(layers=("mixed3a",), classes=(), **changes)


def fft_config(**changes) -> DreamConfig:
    base = dict(param="fft", transforms="standard", steps=2, jitter=4, layers=(), classes=("banana",))
    base.update(changes)
    return DreamConfig(**base)


def logits(network, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return network.extractor(["fc"])(image)["fc"][0]


def channel_mean(network, image: torch.Tensor, node: str) -> torch.Tensor:
    """(C,) mean activation of each channel of `node`."""
    with torch.no_grad():
        return network.extractor([node])(image)[node][0].flatten(1).mean(1)


# --- parameterisations ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fft", "pixel"])
@pytest.mark.parametrize("decorrelate", [True, False])
def test_parameterisation_reproduces_start_image(image, kind, decorrelate):
    start = image.clone()
    start[..., :4, :4] = 0.0  # exact 0 and 1 cannot be reached by a sigmoid: clamped by EPS
    start[..., -4:, -4:] = 1.0
    param = make_parameterization(kind, start, decorrelate=decorrelate)
    out = param()
    assert out.shape == start.shape and out.dtype == torch.float32
    assert torch.allclose(out, start.clamp(EPS, 1 - EPS), atol=1e-4)
    assert (out - start).abs().max() <= EPS + 1e-4


def test_fourier_image_odd_size_and_batch():
    start = torch.rand(2, 3, 37, 51, generator=torch.Generator().manual_seed(3))
    param = FourierImage(start)
    assert param.spectrum.shape == (2, 3, 37, 51 // 2 + 1, 2)
    assert torch.allclose(param(), start.clamp(EPS, 1 - EPS), atol=1e-4)


def test_fourier_parameters_favour_low_frequencies():
    """Equal-sized random parameters give an image whose power falls with frequency (1/f):
    a step in this basis moves coarse structure, not pixel static."""
    grey = torch.full((1, 3, 64, 64), 0.5)
    param = FourierImage(grey, decorrelate=False)
    with torch.no_grad():
        param.spectrum.copy_(0.05 * torch.randn(param.spectrum.shape, generator=torch.Generator().manual_seed(0)))
    logit = torch.logit(param().detach())
    power = torch.fft.rfft2(logit - logit.mean((2, 3), keepdim=True)).abs().pow(2).mean((0, 1))
    fy = torch.fft.fftfreq(64).abs().view(-1, 1)
    fx = torch.fft.rfftfreq(64).view(1, -1)
    f = torch.sqrt(fy**2 + fx**2)
    low = power[(f > 0) & (f < 0.1)].mean()
    high = power[f > 0.35].mean()
    assert low > 20 * high
    # the pixel parameterisation has no such preference
    pix = PixelImage(grey, decorrelate=False)
    with torch.no_grad():
        pix.values.copy_(0.05 * torch.randn(pix.values.shape, generator=torch.Generator().manual_seed(0)))
    p = torch.fft.rfft2(pix().detach() - 0.5).abs().pow(2).mean((0, 1))
    assert p[(f > 0) & (f < 0.1)].mean() < 3 * p[f > 0.35].mean()


def test_decorrelated_colour_mixes_channels():
    grey = torch.full((1, 3, 8, 8), 0.5)
    param = PixelImage(grey, decorrelate=True)
    with torch.no_grad():
        param.values[:, 0] += 1.0  # the first colour direction: mostly brightness
    out = param() - 0.5
    assert (out[0, :, 0, 0] > 0.01).all()  # R, G and B all rose
    plain = PixelImage(grey, decorrelate=False)
    with torch.no_grad():
        plain.values[:, 0] += 1.0
    out = plain() - 0.5
    assert out[0, 0, 0, 0] > 0.1 and out[0, 1:, 0, 0].abs().max() < 1e-6


# --- transforms ----------------------------------------------------------------------------


def test_standard_transform_is_seeded_per_image(image):
    batch = torch.cat([image, image.flip(-1)])

    def run(seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        t = make_render_transform("standard", 8, gens)
        return torch.stack([t(batch) for _ in range(3)])

    a, b = run([1, 2]), run([1, 2])
    assert torch.equal(a, b)
    # the second image's transforms depend only on its own seed
    c = run([7, 2])
    assert torch.equal(a[:, 1], c[:, 1]) and not torch.equal(a[:, 0], c[:, 0])
    assert min(RENDER_SCALES) < 1 < max(RENDER_SCALES) and min(RENDER_ANGLES) < 0 < max(RENDER_ANGLES)


def test_none_transform_only_shifts(image):
    t = make_render_transform("none", 5, [torch.Generator().manual_seed(0)])
    out = t(image)
    assert out.shape == image.shape
    # a cyclic shift keeps every pixel value
    assert torch.allclose(out.flatten().sort().values, image.flatten().sort().values)


# --- render --------------------------------------------------------------------------------


def test_render_grows_class_logit_specifically(network):
    """Without random transforms the gradient is exact: the chosen class's logit rises most of all 1000."""
    start = make_noise((48, 48), seed=0)
    before = logits(network, start)
    out = render(start, network, fft_config(transforms="none", jitter=0, steps=3))
    delta = logits(network, out) - before
    assert delta[BANANA] > 0.1
    assert int(delta.argmax()) == BANANA


def test_render_grows_class_logit_with_standard_transforms(network):
    start = make_noise((48, 48), seed=0)
    before = logits(network, start)
    out = render(start, network, fft_config(classes=("ant",), steps=4))
    delta = logits(network, out) - before
    assert delta[310] > 0.03
    assert delta[310] > delta.mean() + 0.5 * delta.std()


def test_render_grows_channel_from_noise(network):
    """`--layer mixed4a:97` from noise: that unit's activation rises, more than the layer's average."""
    start = make_noise((48, 48), seed=0)
    before = channel_mean(network, start, "inception4a")
    out = render(start, network, fft_config(layers=("mixed4a:97",), classes=(), steps=3))
    after = channel_mean(network, out, "inception4a")
    delta = after - before
    assert delta[97] > 0.3 * before[97] > 0
    assert delta[97] > delta.mean() + delta.std()


def test_render_channel_rises_most_with_exact_gradient(network):
    start = make_noise((48, 48), seed=0)
    before = channel_mean(network, start, "inception4a")
    out = render(start, network, fft_config(layers=("mixed4a:97",), classes=(), transforms="none", jitter=0, steps=3))
    delta = channel_mean(network, out, "inception4a") - before
    assert int(delta.argmax()) == 97


def test_pixel_dream_grows_channel(network):
    start = make_noise((48, 48), seed=0)
    before = channel_mean(network, start, "inception4a")
    config = DreamConfig(layers=("mixed4a:97",), octaves=1, steps=3, step_size=8, jitter=0)
    out = dream(start, network, config)
    delta = channel_mean(network, out, "inception4a") - before
    assert delta[97] > delta.mean() + 2 * delta.std()


def test_render_is_deterministic_and_keeps_input(network):
    start = make_noise((48, 56), seed=1)
    copy = start.clone()
    config = cheap_config(seed=5)
    a = render(start, network, config)
    b = render(start, network, config)
    c = render(start, network, config.replace(seed=6))
    assert torch.equal(start, copy)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (1, 3, 48, 56) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0


def test_render_batch_depends_only_on_each_seed(network):
    one = make_noise((48, 48), seed=1)
    two = make_noise((48, 48), seed=2)
    config = cheap_config(steps=2)
    batch = render(torch.cat([one, two]), network, config, seeds=[3, 4])
    alone = render(two, network, config, seeds=[4])
    assert torch.allclose(batch[1:], alone, atol=1e-4)
    with pytest.raises(ValueError):
        render(one, network, config, seeds=[1, 2])


def test_render_photo_start_is_kept_with_tiny_steps(network, image):
    """The parameterisation starts at the photo: with a negligible learning rate it comes back."""
    out = render(image, network, cheap_config(steps=1, learning_rate=1e-7))
    assert (out - image).abs().max() <= EPS + 1e-3


def test_render_reports_progress(network):
    seen = []
    render(make_noise((48, 48), seed=0), network, cheap_config(steps=3), progress=seen.append)
    assert [(p.octave, p.octaves, p.step, p.steps, p.done, p.total) for p in seen] == [
        (0, 1, 0, 3, 1, 3), (0, 1, 1, 3, 2, 3), (0, 1, 2, 3, 3, 3)
    ]
    assert all(p.objective.shape == (1,) for p in seen)


def test_engine_dispatches_fft_to_render(network):
    start = make_noise((48, 48), seed=0)
    config = cheap_config(steps=1)
    assert torch.equal(dream(start, network, config), render(start, network, config))


def test_tv_weight_smooths(network):
    from dreamer.backend.gradients import total_variation

    start = make_noise((48, 48), seed=0)
    config = cheap_config(steps=2, learning_rate=0.2)
    plain = render(start, network, config)
    smooth = render(start, network, config.replace(tv_weight=50.0))
    assert total_variation(smooth) < total_variation(plain)


def test_blur_low_passes_the_gradient_only():
    from dreamer.loops.render import _BlurGradient

    x = torch.zeros(1, 3, 16, 16, requires_grad=True)
    y = _BlurGradient.apply(x, 1.5)
    assert torch.equal(y, x)
    spike = torch.zeros(1, 3, 16, 16)
    spike[..., 8, 8] = 1.0
    (y * spike).sum().backward()
    g = x.grad
    assert g[0, 0, 8, 8] < 0.2 and g[0, 0, 8, 9] > 0.01  # spread out
    assert torch.allclose(g.sum(), torch.tensor(3.0), atol=1e-4)  # but not lost


def test_render_pixel_parameterisation_and_too_small(network):
    start = make_noise((48, 48), seed=0)
    before = logits(network, start)[BANANA]
    out = render(start, network, fft_config(param="pixel", transforms="none", jitter=0, steps=3))
    assert logits(network, out)[BANANA] > before + 0.05
    with pytest.raises(ImageError):
        render(make_noise((20, 64), seed=0), network, cheap_config())


def test_cli_channel_from_noise(tmp_path, monkeypatch, network):
    """`dreamer run noise:WxH --layer mixed4a:97 --param fft --transforms standard` works and records it."""
    from click.testing import CliRunner

    from dreamer.cli import main
    from dreamer.io.images import read_metadata
    from dreamer.io.metadata import parse_metadata

    monkeypatch.setattr("dreamer.cli.run.open_network", lambda *a, **k: network)
    out = tmp_path / "unit.png"
    args = ["run", "noise:48x48", "--layer", "mixed4a:97", "--param", "fft", "--transforms", "standard",
            "--steps", "2", "-q", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    config = parse_metadata(read_metadata(out))["config"]
    assert config["layers"] == ["mixed4a:97"] and config["param"] == "fft" and config["transforms"] == "standard"
