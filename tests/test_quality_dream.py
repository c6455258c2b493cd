"""Dreams on a real network (EfficientNet-Lite0 with its ImageNet weights, from the test extras):
a dream raises what its layer sees, the photo stays what it was (for the dreaming network
and for a held-out one), and a preset runs end to end through the command line.

CPU, small images, a few seconds each. The numbers asserted were measured with margin
(docs/models.md has the figures)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import dreamer
from dreamer.cli import main
from dreamer.io.images import load_image, read_metadata, resize
from dreamer.io.metadata import parse_metadata
from dreamer.objectives import layer_l2

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}


def _photo(longest: int) -> torch.Tensor:
    """samples/chelsea.png (a cat) with its longest side scaled to `longest`, (1,3,H,W) in [0,1]."""
    image = load_image(SAMPLES / "chelsea.png")
    h, w = image.shape[-2:]
    f = longest / max(h, w)
    return resize(image, (round(h * f), round(w * f)))


def _objective(network, layer: str, image: torch.Tensor) -> float:
    node = network.resolve(layer).node
    with torch.no_grad():
        return float(layer_l2(node)(network.extractor([node])(image)))


def _top5(network, image: torch.Tensor) -> list[str]:
    side = network.spec.input_size
    logits = network.resolve("logits").node
    with torch.no_grad():
        scores = network.extractor([logits])(resize(image, (side, side)))[logits][0]
    return [network.categories[i] for i in scores.topk(5).indices.tolist()]


def test_a_middle_layer_dream_raises_its_objective_many_fold(lite0):
    photo = _photo(160)
    before = photo.clone()
    base = _objective(lite0, "@middle", photo)
    # the classic recipe: two octaves of jittered, normalised gradient steps
    classic = dreamer.dream(photo, network=lite0, layers=["@middle"], octaves=2, steps=20, jitter=8, precision="fp32")
    assert torch.equal(photo, before), "the input was modified"
    assert classic.shape == photo.shape and 0 <= float(classic.min()) and float(classic.max()) <= 1
    assert _objective(lite0, "@middle", classic) > 2.0 * base  # measured 2.5x
    # one scale, no jitter: the ascent itself, measured on the image it was made on
    ascent = dreamer.dream(photo, network=lite0, layers=["@middle"], octaves=1, steps=40, jitter=0, precision="fp32")
    assert _objective(lite0, "@middle", ascent) > 3.5 * base  # measured 4.2x


def test_a_middle_layer_dream_is_still_a_cat_to_both_networks(lite0, lite1):
    """The dream changes the photo, yet the dreaming network and a held-out one (Lite1, which
    never saw the dream being made) still see a cat."""
    photo = _photo(224)
    dream = dreamer.dream(photo, network=lite0, layers=["@middle"], octaves=3, steps=8, jitter=16, precision="fp32")
    assert float((dream - photo).abs().mean()) * 255 > 5  # measured 7.3 (in 0-255 units)
    for network in (lite0, lite1):
        top = _top5(network, dream)
        assert CATS & set(top[:3]), (network.name, top)


def test_a_shallow_layer_dream_keeps_the_cat(lite0):
    photo = _photo(224)
    dream = dreamer.dream(photo, network=lite0, layers=["@shallow"], octaves=2, steps=5, jitter=16, precision="fp32")
    assert float((dream - photo).abs().mean()) * 255 > 3  # measured 5.3
    top = _top5(lite0, dream)
    assert CATS & set(top), top


def test_a_preset_end_to_end_on_the_real_network(tmp_path):
    out = tmp_path / "dream.png"
    result = CliRunner().invoke(main, [
        "run", str(SAMPLES / "chelsea.png"), "--model", "efficientnet-lite0", "--preset", "high-level",
        "--size", "128", "--steps", "3", "--octaves", "2", "-q", "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    record = parse_metadata(read_metadata(out))
    assert record["model"] == "efficientnet-lite0" and record["weights"] == "pretrained"
    assert record["config"]["layers"] == ["@middle", "@upper", "@deep=0.5"]
    dream = load_image(out)
    assert max(dream.shape[-2:]) == 128
    assert float((dream - _photo(128)).abs().mean()) * 255 > 1


@pytest.mark.parametrize("role", ["@lower", "@upper", "@deep"])
def test_every_dream_role_raises_its_objective(lite0, role):
    photo = _photo(128)
    dream = dreamer.dream(photo, network=lite0, layers=[role], octaves=1, steps=10, jitter=0, precision="fp32")
    assert _objective(lite0, role, dream) > 1.5 * _objective(lite0, role, photo)
