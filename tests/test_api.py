"""The Python API: `dreamer.dream` on PIL images, paths and tensors, with registry models
and with your own `torch.nn.Module`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import dreamer
from dreamer.errors import UnknownNameError

FAST = {"layers": ["mixed3a"], "octaves": 1, "steps": 2, "jitter": 2}


def _pil(width: int = 80, height: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BILINEAR)


def test_public_names():
    for name in ("dream", "noise", "prepare", "PreparedNetwork", "set_threads", "load_model", "Network", "DreamConfig",
                 "layer_l2", "channel", "class_logit", "plan_octaves"):
        assert getattr(dreamer, name) is not None
    assert dreamer.DreamConfig().octaves == 4
    with pytest.raises(AttributeError):
        dreamer.no_such_thing  # noqa: B018


def test_dream_a_pil_image(network):
    img = _pil()
    before = np.asarray(img).copy()
    out = dreamer.dream(img, network=network, **FAST)
    assert isinstance(out, Image.Image)
    assert out.size == img.size and out.mode == "RGB"
    assert np.array_equal(np.asarray(img), before)  # the input is untouched
    assert np.abs(np.asarray(out).astype(int) - before).mean() > 0.5


def test_dream_a_grayscale_rgba_pil_image(network):
    out = dreamer.dream(_pil().convert("LA"), network=network, **FAST)
    assert isinstance(out, Image.Image) and out.mode == "RGB"


def test_dream_a_path(network, tmp_path):
    path = tmp_path / "in.png"
    _pil().save(path)
    out = dreamer.dream(str(path), network=network, **FAST)
    assert isinstance(out, Image.Image) and out.size == (80, 64)
    assert dreamer.dream(path, network=network, **FAST).tobytes() == out.tobytes()


def test_dream_tensors_keep_their_shape(network, image):
    single = image[0].clone()
    out3 = dreamer.dream(single, network=network, **FAST)
    assert out3.shape == single.shape and out3.device.type == "cpu"
    assert torch.equal(single, image[0])
    batch = torch.cat([image, image.flip(-1)])
    out4 = dreamer.dream(batch, network=network, seeds=[1, 2], **FAST)
    assert out4.shape == batch.shape
    assert 0 <= out4.min() and out4.max() <= 1


def test_api_and_engine_agree(network, image):
    from dreamer.loops.deepdream import dream as engine_dream

    config = dreamer.DreamConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in FAST.items()}, seed=5)
    via_api = dreamer.dream(image, network=network, config=config)
    via_engine = engine_dream(image, network, config)
    assert torch.equal(via_api, via_engine)
    # keyword overrides apply on top of a config
    other = dreamer.dream(image, network=network, config=config, seed=6)
    assert not torch.equal(other, via_api)


def test_classes_alone_drop_the_default_layer(network, image):
    # the API resolves like the command line and presets: naming only classes grows the class,
    # not the class on top of the default mixed4c term
    from dreamer.loops import run_config

    fields = {"octaves": 1, "steps": 1, "jitter": 0}
    via_api = dreamer.dream(image, network=network, classes=["banana"], **fields)
    want = run_config(image, network, dreamer.DreamConfig(layers=(), classes=("banana",), **fields))
    assert torch.equal(via_api, want)
    both = run_config(image, network, dreamer.DreamConfig(layers=("mixed4c",), classes=("banana",), **fields))
    assert not torch.equal(via_api, both)
    # a single layer given as text is that layer
    one = dreamer.dream(image, network=network, layers="mixed3a", **fields)
    assert torch.equal(one, dreamer.dream(image, network=network, layers=["mixed3a"], **fields))


def test_naming_nothing_dreams_the_models_default_layer(image):
    # DreamConfig's default layer is GoogLeNet's; another model dreams about its own default
    net = dreamer.load_model("alexnet", weights="random:0", device="cpu")
    big = torch.nn.functional.interpolate(image, size=(96, 120), mode="bilinear")
    seen = []
    out = dreamer.dream(big, network=net, octaves=1, steps=1, progress=seen.append)
    assert out.shape == big.shape and len(seen) == 1
    with pytest.raises(UnknownNameError):
        dreamer.dream(big, network=net, layers=["mixed4c"], octaves=1, steps=1)


def test_a_prepared_network_is_reused_and_gives_the_same_dream(network, image):
    prepared = dreamer.prepare(network)
    out = dreamer.dream(image, network=prepared, **FAST)
    assert torch.equal(out, dreamer.dream(image, network=network, **FAST))
    forwards = dict(prepared._forwards)
    dreamer.dream(image, network=prepared, **FAST)
    assert prepared._forwards == forwards  # nothing prepared again
    # a render through the API: param fft picks the render loop
    grown = dreamer.dream(dreamer.noise(48, 48, param="fft"), network=prepared, layers=["mixed3a"], param="fft", steps=2)
    assert grown.shape == (3, 48, 48) and prepared.last["path"] == "fast"


def test_noise_follows_the_start_noise_policy():
    faint, strong = dreamer.noise(40, 30, param="fft"), dreamer.noise(40, 30, param="pixel")
    assert faint.shape == strong.shape == (3, 30, 40)
    assert float((faint - 0.5).abs().max()) <= 0.01 + 1e-6 < float((strong - 0.5).abs().max()) <= 0.1 + 1e-6
    assert torch.equal(dreamer.noise(40, 30, seed=3), dreamer.noise(40, 30, seed=3))


def test_threads(network, image):
    before = torch.get_num_threads()
    try:
        dreamer.dream(image, network=network, threads=1, **FAST)
        assert torch.get_num_threads() == 1
        assert dreamer.set_threads(None) == 1  # None changes nothing
        with pytest.raises(dreamer.errors.ConfigError):
            dreamer.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_threads_flag(tmp_path, monkeypatch, network):
    from click.testing import CliRunner

    from dreamer.cli import main

    monkeypatch.setattr("dreamer.cli.run.open_network", lambda *a, **k: network)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        out = tmp_path / "t.png"
        args = ["run", "noise:48x48", "--layer", "mixed3a", "--octaves", "1", "--steps", "1", "-q", "-o", str(out)]
        result = CliRunner().invoke(main, [*args, "--threads", "1"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1 and out.exists()
        result = CliRunner().invoke(main, [*args, "--threads", "0", "-f"])
        assert result.exit_code == 2 and "--threads" in result.output
    finally:
        torch.set_num_threads(before)


def test_dream_loads_a_registry_model_by_name(image):
    out = dreamer.dream(image, model="googlenet", weights="random:0", device="cpu", **FAST)
    assert out.shape == image.shape


def test_bad_inputs(network):
    with pytest.raises(TypeError):
        dreamer.dream(np.zeros((8, 8, 3)), network=network, **FAST)
    with pytest.raises(dreamer.errors.ConfigError):
        dreamer.dream(_pil(), network=network, layers=["mixed3a"], octaves=0)
    with pytest.raises(UnknownNameError):
        dreamer.dream(_pil(), network=network, layers=["mixed9"], octaves=1, steps=1)


class SmallNet(nn.Module):
    """A user's own network: a feature stack and a head, named like torchvision's."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        )
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.classifier = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def test_own_module_by_path_with_own_normalisation(image):
    model = SmallNet()
    net = dreamer.Network.from_module(model, mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2))
    scores: list[float] = []
    out = dreamer.dream(
        image, network=net, layers=["features.3"], octaves=2, octave_scale=1.4, steps=3, jitter=2,
        progress=lambda p: scores.append(p.objective.item()),
    )
    assert out.shape == image.shape
    assert scores[2] > scores[0]  # the first octave's steps raise the objective
    # the normalisation is part of what is maximised: another one gives another image
    plain = dreamer.Network.from_module(model, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    other = dreamer.dream(image, network=plain, layers=["features.3"], octaves=2, octave_scale=1.4, steps=3, jitter=2)
    assert (out - other).abs().max() > 1e-3


def test_own_sequential_by_index_with_channels(image):
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU())
    net = dreamer.Network.from_module(model)
    out = dreamer.dream(image, network=net, layers=["2:0-2", "0=0.5"], octaves=1, steps=2)
    assert out.shape == image.shape and (out - image).abs().mean() > 1e-3
    pil = dreamer.dream(_pil(), network=net, layers=["2"], octaves=1, steps=1)
    assert isinstance(pil, Image.Image)


def test_own_module_whose_forward_reaches_outside_itself_works_with_default_precision():
    # a forward that calls a network it does not own as a submodule: copying the module for
    # BatchNorm folding would silently detach the hooks, so custom modules are not copied on fp32
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))

    class Outer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = body

        def forward(self, x):
            return body(x)  # the captured object, not self.inner

    net = dreamer.Network.from_module(Outer())
    out = dreamer.dream(torch.rand(1, 3, 40, 40), network=net, layers=["inner.2"], octaves=1, steps=2, jitter=2)
    assert out.shape == (1, 3, 40, 40)
