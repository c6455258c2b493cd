"""Tests for the feature-visualisation render loop and the image parameterisations."""

from __future__ import annotations

import pytest
import torch

from dreamer import transforms as T
from dreamer.backend import PreparedNetwork
from dreamer.config import DreamConfig
from dreamer.errors import ImageError
from dreamer.io.images import make_noise
from dreamer.loops import run_config
from dreamer.loops.common import total_variation
from dreamer.loops.deepdream import dream
from dreamer.loops.parameterization import EPS, FourierImage, PixelImage, make_parameterization
from dreamer.loops.render import render

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
        t = T.standard_transform([torch.Generator().manual_seed(s) for s in seeds], 8)
        out = []
        for _ in range(3):
            t.draw()
            out.append(t(batch))
        return torch.stack(out)

    a, b = run([1, 2]), run([1, 2])
    assert torch.equal(a, b)
    # the second image's transforms depend only on its own seed
    c = run([7, 2])
    assert torch.equal(a[:, 1], c[:, 1]) and not torch.equal(a[:, 0], c[:, 0])


class _Recorder(PreparedNetwork):
    """A prepared network that records what the loop asked and answers with a zero gradient."""

    def __init__(self, network) -> None:
        super().__init__(network)
        self.calls = []

    def gradient(self, images, objective, *, precision="auto", tile=None):
        self.calls.append((precision, tile))
        return torch.zeros_like(images), torch.zeros(images.shape[0])


def test_standard_transforms_are_the_same_in_both_loops(network, image, monkeypatch):
    # one table, one order of random draws: with the same seed and jitter the classic loop and
    # a render rotate and scale each step alike (they once used ±5°/0.95-1.05 and ±10°/0.9-1.1)
    seen = []
    real = T.affine

    def spy(x, *, scale=1.0, angle_deg=0.0, **kwargs):
        seen.append((torch.as_tensor(scale).tolist(), torch.as_tensor(angle_deg).tolist()))
        return real(x, scale=scale, angle_deg=angle_deg, **kwargs)

    monkeypatch.setattr(T, "affine", spy)
    steps = 30
    config = DreamConfig(layers=("mixed3a",), octaves=1, steps=steps, jitter=8, transforms="standard", seed=9)
    dream(image, _Recorder(network), config)
    classic, seen[:] = list(seen), []
    render(image, _Recorder(network), config.replace(param="fft"))
    assert classic == seen and len(classic) >= steps - 2  # (a draw of scale 1 and angle 0 skips the resampling)
    angles = [a[0] for _, a in classic]
    scales = [s[0] for s, _ in classic]
    as_f32 = lambda table: {torch.tensor(v, dtype=torch.float32).item() for v in table}  # noqa: E731
    assert set(angles) <= as_f32(T.STANDARD_ANGLES) and set(scales) <= as_f32(T.STANDARD_SCALES)
    assert max(abs(a) for a in angles) > 5 and (min(scales) < 0.95 or max(scales) > 1.05)


def test_roll_keeps_every_pixel_and_rolls_back(image):
    shifts = T.draw_shifts([torch.Generator().manual_seed(0)], 5)
    out = T.roll(image, shifts)
    assert out.shape == image.shape and not torch.equal(out, image)
    assert torch.equal(out.flatten().sort().values, image.flatten().sort().values)
    assert torch.equal(T.roll(out, shifts, inverse=True), image)


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


def test_run_config_picks_the_loop_and_the_loops_stay_apart(network):
    start = make_noise((48, 48), seed=0)
    config = cheap_config(steps=1)
    assert torch.equal(run_config(start, network, config), render(start, network, config))
    pixel = DreamConfig(layers=("mixed3a",), octaves=1, steps=1)
    assert torch.equal(run_config(start, network, pixel), dream(start, network, pixel))
    with pytest.raises(ValueError, match="run_config"):
        dream(start, network, config)  # the classic loop never turns into a render itself


def test_render_asks_the_backend_with_the_config_settings(network):
    recorder = _Recorder(network)
    render(make_noise((48, 48), seed=0), recorder, cheap_config(steps=3, precision="bf16", tile=64))
    assert recorder.calls == [("bf16", 64)] * 3


def test_render_takes_the_fast_path_and_records_what_it_used(network):
    # on a CPU `auto` is fp32 through the folded, channels_last copy; an explicit bf16 really
    # runs bf16, and the metadata says what was used in both cases
    import json

    from dreamer.io.metadata import build_metadata

    start = make_noise((48, 48), seed=0)
    for precision, used in (("auto", "fp32"), ("bf16", "bf16")):
        prepared = PreparedNetwork(network)
        config = cheap_config(steps=1, precision=precision)
        render(start, prepared, config)
        assert prepared.last["path"] == "fast" and prepared.last["precision"] == used
        meta = build_metadata(config, model="googlenet", weights="random:0", device="cpu", source="noise:48x48")
        assert json.loads(meta["dreamer"])["precision_used"] == used


def test_fast_render_agrees_with_the_exact_one(network):
    # one step: the same picture to float rounding (Adam then amplifies rounding differences in
    # tiny gradient components, so longer renders drift apart; both must still grow the class)
    start = make_noise((48, 48), seed=0)
    config = fft_config(steps=1)
    exact = render(start, network, config.replace(precision="fp32"))
    fast = render(start, network, config)
    assert float((fast - exact).abs().max()) < 1e-5
    assert float((exact - start).abs().mean()) > 1e-4
    before = logits(network, start)[BANANA]
    for precision in ("fp32", "auto"):
        grown = render(start, network, config.replace(steps=3, precision=precision, transforms="none", jitter=0))
        assert logits(network, grown)[BANANA] > before + 0.05


def test_tv_weight_smooths(network):
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


# --- crops: several random views per step ---------------------------------------------------


def _crops(seeds, **kw):
    base = dict(views=2, side=(0.5, 1.0), size=24, angle=15.0, flip=0.5, noise=0.02)
    base.update(kw)
    return T.RandomCrops([torch.Generator().manual_seed(s) for s in seeds], **base)


def test_crops_are_seeded_per_image_and_shaped(image):
    batch = torch.cat([image, image.flip(-1)])

    def run(seeds):
        crops = _crops(seeds, views=3)
        out = []
        for _ in range(2):
            crops.draw(tuple(batch.shape[-2:]))
            views = crops(batch)
            assert len(views) == 3 and all(v.shape == (2, 3, 24, 24) for v in views)
            out.append(torch.stack(views))
        return torch.stack(out)

    a, b = run([1, 2]), run([1, 2])
    assert torch.equal(a, b)
    c = run([7, 2])  # the second image's views depend only on its own seed
    assert torch.equal(a[:, :, 1], c[:, :, 1]) and not torch.equal(a[:, :, 0], c[:, :, 0])
    assert not torch.equal(a[0], a[1])  # new draws each step
    alone = _crops([2], views=3)
    alone.draw(tuple(image.shape[-2:]))
    first = alone(image.flip(-1))
    crops = _crops([1, 2], views=3)
    crops.draw(tuple(batch.shape[-2:]))
    assert all(torch.allclose(v[1:], w, atol=1e-6) for v, w in zip(crops(batch), first))


def test_a_whole_crop_is_the_resized_canvas(image):
    # side 1, no rotation, mirror or noise: the view is the (antialiased) canvas at the view size
    square = image[..., :, 8:72]  # 64 x 64
    crops = _crops([0], views=1, side=(1.0, 1.0), size=32, angle=0.0, flip=0.0, noise=0.0)
    (view,) = crops(square)
    expected = T.resize(square, (32, 32))
    assert float((view - expected).abs().max()) < 0.02
    # mirrored always: the same, left-right
    (mirrored,) = _crops([0], views=1, side=(1.0, 1.0), size=32, angle=0.0, flip=1.0, noise=0.0)(square)
    assert float((mirrored - expected.flip(-1)).abs().max()) < 0.02


def test_crops_take_their_part_of_a_wide_canvas():
    # a canvas whose left half is black and right half white: small crops of a 40x160 canvas
    # (side 0.5 of the shorter side = 20 px) fall in one half or the other, never stretched
    canvas = torch.zeros(1, 3, 40, 160)
    canvas[..., 80:] = 1.0
    crops = _crops([3], views=16, side=(0.5, 0.5), size=20, angle=0.0, flip=0.0, noise=0.0)
    means = torch.stack([float(v.mean()) * torch.ones(()) for v in crops(canvas)])
    assert (means < 0.05).any() and (means > 0.95).any()  # pure black and pure white views exist
    # a crop is square in canvas pixels: a 20-pixel crop shows at most 20 px of the 160 px width
    assert ((means > 0.05) & (means < 0.95)).float().mean() < 0.5


def test_shrinking_crops_reach_every_pixel():
    """A view smaller than the crop is sampled from an antialiased copy: the gradient reaches
    every canvas pixel inside the crop, not only the ones bilinear sampling happens to hit."""
    canvas = torch.rand(1, 3, 96, 96, requires_grad=True)
    crops = _crops([0], views=1, side=(1.0, 1.0), size=24, angle=0.0, flip=0.0, noise=0.0)
    (view,) = crops(canvas)
    view.sum().backward()
    assert float((canvas.grad[0, 0] != 0).float().mean()) == 1.0


def test_crops_reject_bad_settings():
    with pytest.raises(ValueError):
        _crops([0], views=0)
    with pytest.raises(ValueError):
        _crops([0], side=(0.8, 0.5))
    with pytest.raises(ValueError):
        _crops([0, 1])(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize(
    "field, value",
    [("views", 0), ("views", 65), ("views", 2.5), ("crop", (0.0, 1.0)), ("crop", (0.8, 0.5)), ("crop", (0.5, 1.5)),
     ("crop", (0.5,)), ("crop", "half"), ("decay", -1.0), ("decay", 9.0), ("decay", float("nan"))],
)
def test_render_fields_are_validated(field, value):
    from dreamer.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        fft_config(**{field: value})
    assert info.value.field == field


def test_crops_need_the_render_loop():
    from dreamer.errors import ConfigError

    with pytest.raises(ConfigError, match="param fft"):
        DreamConfig(transforms="crops")
    config = fft_config(transforms="crops", views=3, crop=[0.4, 1], decay=1.5)
    assert config.crop == (0.4, 1.0)  # a TOML/JSON list becomes a tuple of floats
    assert DreamConfig.from_dict(config.to_dict()) == config


def test_render_averages_the_objective_over_its_views(network):
    recorder = _Recorder(network)
    render(make_noise((64, 64), seed=0), recorder, fft_config(transforms="crops", views=3, steps=2))
    assert len(recorder.calls) == 2 * 3  # one backend call per view and step
    seen = []

    class Shapes(_Recorder):
        def gradient(self, images, objective, *, precision="auto", tile=None):
            seen.append(tuple(images.shape))
            return super().gradient(images, objective, precision=precision, tile=tile)

    render(make_noise((64, 80), seed=0).repeat(2, 1, 1, 1), Shapes(network), fft_config(transforms="crops", views=2, steps=1))
    # views at the model's input size (googlenet: 224), one view of each image per call
    assert seen == [(2, 3, 224, 224)] * 2


def test_crops_render_grows_the_class_and_is_seeded(network):
    start = make_noise((64, 64), seed=0)
    config = fft_config(transforms="crops", views=2, steps=6, jitter=4, learning_rate=0.1)
    seen = lambda x: logits(network, T.resize(x, (224, 224)))  # noqa: E731  (what the views show)
    scores = []
    a = render(start, network, config, progress=lambda p: scores.append(float(p.objective[0])))
    assert scores[-1] > scores[0] + 0.1  # the mean over the views rose
    # and the class rose on the whole picture too (what it grows on the real network:
    # tests/test_quality_render.py; this random-weight one is not class-specific enough)
    assert seen(a)[BANANA] > seen(start)[BANANA] + 0.05
    assert torch.equal(a, render(start, network, config))
    assert not torch.equal(a, render(start, network, config.replace(seed=1)))
    # a batch: each image as it would be alone (up to rounding: a batch of views runs through
    # other convolution kernels, ~1e-6 relative, and Adam's first steps are nearly sign steps)
    two = make_noise((64, 64), seed=5)
    one_step = config.replace(steps=1)
    batch = render(torch.cat([start, two]), network, one_step, seeds=[0, 9])
    alone = render(two, network, one_step, seeds=[9])
    other = render(two, network, one_step, seeds=[10])
    assert float((batch[1:] - alone).abs().mean()) < 0.1 * float((other - alone).abs().mean())


def test_views_of_standard_transforms_are_independent_draws(network, image, monkeypatch):
    seen = []
    real = T.affine

    def spy(x, *, scale=1.0, angle_deg=0.0, **kwargs):
        seen.append(torch.as_tensor(angle_deg).tolist())
        return real(x, scale=scale, angle_deg=angle_deg, **kwargs)

    monkeypatch.setattr(T, "affine", spy)
    recorder = _Recorder(network)
    render(image, recorder, fft_config(views=3, steps=4, seed=2))
    assert len(recorder.calls) == 12
    assert len({tuple(a) for a in seen}) > 4  # not one draw repeated three times


def test_decay_moves_power_to_coarse_structure():
    grey = torch.full((1, 3, 64, 64), 0.5)
    noise = 0.05 * torch.randn(1, 3, 64, 33, 2, generator=torch.Generator().manual_seed(0))

    def low_share(decay):
        param = make_parameterization("fft", grey, decorrelate=False, decay=decay)
        with torch.no_grad():
            param.spectrum.copy_(noise)
        values = param.logits().detach()
        power = torch.fft.rfft2(values - values.mean()).abs().pow(2)[..., 1:, 1:]
        return float(power[..., :4, :4].sum() / power.sum())

    assert low_share(1.5) > 1.5 * low_share(1.0)
    # and the start image is reproduced whatever the decay
    start = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(make_parameterization("fft", start, decay=1.5)(), start.clamp(EPS, 1 - EPS), atol=1e-4)


def test_cli_transforms_crops(tmp_path, monkeypatch, network):
    """`--transforms crops` runs the render loop with crops; with the classic loop it is exit 2."""
    from click.testing import CliRunner

    from dreamer.cli import main
    from dreamer.io.images import read_metadata
    from dreamer.io.metadata import parse_metadata

    monkeypatch.setattr("dreamer.cli.run.open_network", lambda *a, **k: network)
    out = tmp_path / "ant.png"
    base = ["run", "noise:64x64", "--class", "ant", "--transforms", "crops", "--steps", "1", "-q", "-o", str(out)]
    result = CliRunner().invoke(main, [*base, "--param", "fft"])
    assert result.exit_code == 0, result.output
    config = parse_metadata(read_metadata(out))["config"]
    assert config["transforms"] == "crops" and config["crop"] == [0.5, 1.0] and config["views"] == 1
    refused = CliRunner().invoke(main, [*base, "--param", "pixel", "-f"])
    assert refused.exit_code == 2 and "crops need param fft" in refused.output
    # --opacity: recorded in the metadata; without the crops views it is a usage error
    result = CliRunner().invoke(main, [*base, "--param", "fft", "--opacity", "50", "-f"])
    assert result.exit_code == 0, result.output
    assert parse_metadata(read_metadata(out))["config"]["opacity_cost"] == 50.0
    before = out.read_bytes()
    refused = CliRunner().invoke(main, [*base[:4], "--steps", "1", "-q", "-o", str(out), "--param", "fft", "--opacity", "5", "-f"])
    assert refused.exit_code == 2 and "invalid --opacity" in refused.output and "transforms is crops" in refused.output
    assert out.read_bytes() == before  # nothing written over


# --- opacity: the object alone on grey -----------------------------------------------------


def test_an_opacity_channel_starts_opaque_and_shows_the_start(image):
    from dreamer.loops.parameterization import WithOpacity, composite

    param = make_parameterization("fft", image, decay=1.5, opacity=True)
    assert isinstance(param, WithOpacity) and len(param.parameters()) == 2
    rgba = param()
    assert rgba.shape == (1, 4, *image.shape[-2:])
    assert float(rgba[:, 3].detach().min()) >= 1 - EPS - 1e-4  # opaque
    assert (composite(rgba, 0.5) - image).abs().max() <= EPS + 1e-4  # the start, as with no opacity
    assert torch.equal(composite(image, 0.5), image)  # an RGB batch has nothing to lay over
    half = torch.cat([torch.ones_like(image), torch.full_like(image[:, :1], 0.5)], 1)
    assert torch.allclose(composite(half, 0.0), torch.full_like(image, 0.5))
    with pytest.raises(ValueError, match="3 channels"):
        FourierImage(image[:, :1])  # decorrelated colours are three


def test_random_backgrounds_are_seeded_flat_or_smooth():
    a = T.random_backgrounds(64, 32, torch.Generator().manual_seed(0))
    assert a.shape == (64, 3, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, T.random_backgrounds(64, 32, torch.Generator().manual_seed(0)))
    spread = a.flatten(2).std(2).amax(1)  # per channel
    flat = spread < 1e-6
    assert 16 < int(flat.sum()) < 48  # about half are one colour, the rest vary smoothly
    smooth = a[~flat]
    assert float((smooth[..., 1:, :] - smooth[..., :-1, :]).abs().mean()) < 0.05  # no pixel noise


def test_transparent_crops_show_the_background_where_the_canvas_is_clear():
    size = 24
    clear = torch.zeros(1, 4, 64, 64)  # transparent everywhere: every view is its background
    crops = _crops([0], views=4, size=size, noise=0.0, transparent=True)
    crops.draw((64, 64))
    for j, view in enumerate(crops(clear)):
        assert view.shape == (1, 3, size, size)
        assert torch.allclose(view[0], crops.backgrounds[0][j], atol=1e-6)
    # an opaque red canvas: red wherever a view sees the canvas, its background past the edge
    red = torch.zeros(1, 4, 64, 64)
    red[:, 0] = 1.0
    red[:, 3] = 1.0
    whole = _crops([1], views=1, side=(1.0, 1.0), size=size, angle=0.0, flip=0.0, noise=0.0, transparent=True)
    (view,) = whole(red)
    inner = view[0, :, 6:-6, 6:-6]
    assert torch.allclose(inner, torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand_as(inner), atol=1e-5)
    many = _crops([2], views=32, side=(1.0, 1.0), size=size, angle=0.0, flip=0.0, noise=0.0, transparent=True)
    shown = torch.stack([v[0, 0].mean() for v in many(red)])
    assert float(shown.min()) < 0.99  # some whole-canvas views reach past the edge (CROP_PAD)
    with pytest.raises(ValueError, match="RGBA"):
        many(red[:, :3])
    with pytest.raises(ValueError, match="RGB canvases"):
        _crops([0])(red)


def test_opacity_costs_more_away_from_the_centre():
    from dreamer.loops.render import OPACITY_CENTRE, opacity_penalty

    centre = torch.zeros(1, 1, 33, 33)
    centre[..., 12:21, 12:21] = 1.0
    corner = torch.zeros(1, 1, 33, 33)
    corner[..., :9, :9] = 1.0
    assert float(opacity_penalty(corner)[0]) > 2 * float(opacity_penalty(centre)[0])
    full = opacity_penalty(torch.ones(2, 1, 33, 33))
    # the mean of 1 + c (x^2 + y^2) over [-1, 1]^2 is 1 + 2c/3 (on a grid, a little more)
    assert full.shape == (2,) and abs(float(full[0]) - (1 + 2 * OPACITY_CENTRE / 3)) < 0.1


@pytest.mark.parametrize("field, value", [("opacity_cost", -1.0), ("opacity_cost", float("inf")), ("grey_weight", -0.5)])
def test_opacity_and_grey_weights_are_validated(field, value):
    from dreamer.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        fft_config(transforms="crops", **{field: value})
    assert info.value.field == field


def test_opacity_needs_the_crops_views():
    from dreamer.errors import ConfigError

    with pytest.raises(ConfigError, match="transforms is crops"):
        fft_config(transforms="standard", opacity_cost=5.0)
    config = fft_config(transforms="crops", opacity_cost=5.0, grey_weight=20.0)
    assert DreamConfig.from_dict(config.to_dict()) == config


def test_an_opacity_render_fades_what_does_not_serve_the_objective(network):
    """With a high price on opacity, a render fades towards the grey it is laid over, most at
    the corners; without it, nothing fades. The result is RGB, the start's size."""
    start = make_noise((64, 64), seed=0, amplitude=0.3)
    config = fft_config(transforms="crops", views=2, steps=12, learning_rate=0.1, jitter=0)
    plain = render(start, network, config)
    faded = render(start, network, config.replace(opacity_cost=50.0))
    assert faded.shape == start.shape
    distance = lambda x: (x - 0.5).abs().flatten(1).mean(1)  # noqa: E731  (from the grey background)
    assert float(distance(faded)[0]) < 0.5 * float(distance(plain)[0])
    corners = torch.cat([faded[..., :8, :8], faded[..., -8:, -8:]], -1)
    assert float(distance(corners)[0]) < float(distance(faded)[0])
    assert torch.equal(faded, render(start, network, config.replace(opacity_cost=50.0)))  # seeded


def test_grey_weight_tames_colours(network):
    start = make_noise((64, 64), seed=0)
    config = fft_config(transforms="crops", views=1, steps=12, learning_rate=0.2, jitter=0)
    wild = render(start, network, config)
    tame = render(start, network, config.replace(grey_weight=500.0))
    assert float((tame - 0.5).abs().mean()) < 0.7 * float((wild - 0.5).abs().mean())


# --- backdrop and views from further away ------------------------------------------------------


def test_a_backdrop_is_flat_or_a_gradient_and_its_views_shift_a_little():
    sky = [(0.2, 0.4, 0.8), (0.6, 0.8, 1.0)]
    image = T.backdrop_image(sky, 5, 7)
    assert image.shape == (1, 3, 5, 7)
    assert torch.allclose(image[0, :, 0, 3], torch.tensor(sky[0])) and torch.allclose(image[0, :, -1, 0], torch.tensor(sky[1]))
    assert torch.allclose(image[0, :, 2, 0], (torch.tensor(sky[0]) + torch.tensor(sky[1])) / 2)  # halfway down
    assert torch.equal(image[..., :1].expand_as(image), image)  # the same along every row
    flat = T.backdrop_image([(0.1, 0.2, 0.3)], 4, 4)
    assert torch.allclose(flat, torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1).expand(1, 3, 4, 4))
    with pytest.raises(ValueError):
        T.backdrop_image([], 4, 4)
    sky = [(0.2, 0.4, 0.8), (0.6, 0.8, 0.85)]  # within the jitter of 0 and 1: nothing clamped
    views = T.backdrop_views(sky, 64, 16, torch.Generator().manual_seed(0))
    assert torch.equal(views, T.backdrop_views(sky, 64, 16, torch.Generator().manual_seed(0)))
    shift = views - T.backdrop_image(sky, 16, 16)
    assert float(shift.abs().max()) <= T.BACKDROP_JITTER + 1e-6  # near the backdrop
    assert torch.allclose(shift, shift[..., :1, :1].expand_as(shift), atol=1e-6)  # one shift per view and channel
    assert float(shift[:, :, 0, 0].std()) > T.BACKDROP_JITTER / 4  # and the shifts differ


def test_crops_over_a_backdrop_show_it_where_the_canvas_is_clear():
    sky = [(0.2, 0.4, 0.8), (0.6, 0.8, 1.0)]
    crops = _crops([0], views=3, size=24, noise=0.0, transparent=True, backdrop=sky)
    for j, view in enumerate(crops(torch.zeros(1, 4, 48, 48))):
        assert torch.allclose(view[0], crops.backgrounds[0][j], atol=1e-6)
        assert float((view[0] - T.backdrop_image(sky, 24, 24)[0]).abs().max()) <= T.BACKDROP_JITTER + 1e-6
    with pytest.raises(ValueError, match="transparent"):
        _crops([0], backdrop=sky)


def test_crops_larger_than_the_canvas_see_all_of_it_small():
    """A crop of side 2 of an opaque red canvas shows the whole canvas at half the view's side,
    a quarter of its area (a little less where it reaches past the margin), background around it."""
    red = torch.zeros(1, 4, 64, 64)
    red[:, 0] = 1.0
    red[:, 3] = 1.0
    crops = _crops([4], views=32, side=(2.0, 2.0), size=32, angle=0.0, flip=0.0, noise=0.0, transparent=True, backdrop=[(0.0, 0.0, 1.0)])
    shares = []
    for view in crops(red):
        is_red = (view[0, 0] > 0.9) & (view[0, 2] < 0.2)
        shares.append(float(is_red.float().mean()))
        assert float(view[0, 2].amax()) > 0.85  # the backdrop is in every view
    shares = torch.tensor(shares)
    # a 16-pixel square in a 32-pixel view is 0.25 of it; its edge pixels blend with the backdrop
    assert float(shares.max()) <= 0.27 and float(shares.min()) > 0.12
    assert float(shares.median()) > 0.2  # mostly the whole canvas
    with pytest.raises(ValueError, match="above 1 only when transparent"):
        _crops([0], side=(0.5, 1.5))


def test_backdrop_and_far_crops_are_validated():
    from dreamer.errors import ConfigError

    config = fft_config(transforms="crops", opacity_cost=5.0, crop=(0.8, 1.8), backdrop="#5985BF, #8cb8f2")
    assert config.backdrop == ("#5985bf", "#8cb8f2")
    assert DreamConfig.from_dict(config.to_dict()) == config
    assert fft_config(transforms="crops", opacity_cost=5.0, backdrop="none").backdrop == ()
    classic = config.classic()
    assert classic.backdrop == () and classic.crop == (0.8, 1.0) and classic.opacity_cost == 0
    for changes, field in [
        (dict(backdrop="#5985bf"), "backdrop"),  # no opacity: nothing would show it
        (dict(opacity_cost=5.0, backdrop="sky"), "backdrop"),
        (dict(opacity_cost=5.0, backdrop=["#000000"] * 3), "backdrop"),
        (dict(opacity_cost=5.0, backdrop=[1, 2, 3]), "backdrop"),
        (dict(crop=(0.5, 1.5)), "crop"),  # no opacity: a view past the canvas would see nothing
        (dict(opacity_cost=5.0, crop=(0.5, 3.5)), "crop"),
    ]:
        with pytest.raises(ConfigError) as info:
            fft_config(transforms="crops", **changes)
        assert info.value.field == field


def test_an_opacity_render_fades_to_its_backdrop(network):
    """With a backdrop, what does not serve the objective fades to the backdrop, not to grey."""
    start = make_noise((64, 64), seed=0, amplitude=0.3)
    config = fft_config(transforms="crops", views=2, steps=12, learning_rate=0.1, jitter=0, opacity_cost=50.0)
    grey = render(start, network, config)
    blue = render(start, network, config.replace(backdrop="#1020e0", crop=(0.5, 2.0)))
    corners = lambda x: torch.cat([x[..., :8, :8], x[..., -8:, -8:]], -1).mean((2, 3))[0]  # noqa: E731
    target = torch.tensor([0x10, 0x20, 0xE0]) / 255
    assert float((corners(blue) - target).abs().max()) < 0.5 * float((corners(grey) - target).abs().max())
    assert float((corners(blue) - target).abs().max()) < 0.15


def test_cli_backdrop(tmp_path, monkeypatch, network):
    from click.testing import CliRunner

    from dreamer.cli import main
    from dreamer.io.images import read_metadata
    from dreamer.io.metadata import parse_metadata

    monkeypatch.setattr("dreamer.cli.run.open_network", lambda *a, **k: network)
    out = tmp_path / "ant.png"
    base = ["run", "noise:64x64", "--class", "ant", "--param", "fft", "--transforms", "crops", "--steps", "1", "-q", "-o", str(out)]
    result = CliRunner().invoke(main, [*base, "--opacity", "5", "--backdrop", "#5985bf,#8CB8F2"])
    assert result.exit_code == 0, result.output
    assert parse_metadata(read_metadata(out))["config"]["backdrop"] == ["#5985bf", "#8cb8f2"]
    before = out.read_bytes()
    for flags, words in [
        (["--opacity", "5", "--backdrop", "skyblue"], "#rrggbb"),
        (["--backdrop", "#5985bf"], "opacity_cost > 0"),
    ]:
        refused = CliRunner().invoke(main, [*base, *flags, "-f"])
        assert refused.exit_code == 2 and "invalid --backdrop" in refused.output and words in refused.output, refused.output
        assert "Traceback" not in refused.output
    assert out.read_bytes() == before  # nothing written over
    # a preset with a backdrop and far views: --opacity 0 turns all three off (nothing else to give)
    plain = tmp_path / "plain.png"
    result = CliRunner().invoke(main, ["run", "noise:64x64", "--preset", "parachute", "--opacity", "0", "--steps", "1", "-q", "-o", str(plain)])
    assert result.exit_code == 0, result.output
    config = parse_metadata(read_metadata(plain))["config"]
    assert config["opacity_cost"] == 0 and config["backdrop"] == [] and config["crop"] == [0.8, 1.0]


def test_cli_render_settings(tmp_path, monkeypatch, network):
    """--views, --crop, --decay and --grey set the render's fields (recorded in the metadata);
    a malformed or out-of-range value is exit 2 naming the flag, and nothing is written."""
    from click.testing import CliRunner

    from dreamer.cli import main
    from dreamer.io.images import read_metadata
    from dreamer.io.metadata import parse_metadata

    monkeypatch.setattr("dreamer.cli.run.open_network", lambda *a, **k: network)
    out = tmp_path / "ant.png"
    base = ["run", "noise:64x64", "--class", "ant", "--param", "fft", "--transforms", "crops", "--steps", "1", "-q", "-o", str(out)]
    flags = ["--views", "3", "--crop", "0.4,1.6", "--opacity", "2", "--decay", "1.25", "--grey", "30"]
    result = CliRunner().invoke(main, [*base, *flags])
    assert result.exit_code == 0, result.output
    config = parse_metadata(read_metadata(out))["config"]
    assert (config["views"], config["crop"], config["decay"], config["grey_weight"]) == (3, [0.4, 1.6], 1.25, 30.0)
    before = out.read_bytes()
    for bad, words in [
        (["--crop", "0.5"], "--crop"), (["--crop", "a,b"], "--crop"), (["--crop", "0.9,0.5"], "invalid --crop"),
        (["--crop", "0.5,1.5"], "opacity_cost > 0"), (["--views", "0"], "--views"), (["--views", "65"], "--views"),
        (["--decay", "5"], "--decay"), (["--grey", "-1"], "--grey"), (["--grey", "nan"], "--grey"),
    ]:
        refused = CliRunner().invoke(main, [*base, *bad, "-f"])
        assert refused.exit_code == 2 and words in refused.output, (bad, refused.output)
        assert "Traceback" not in refused.output
    assert out.read_bytes() == before
