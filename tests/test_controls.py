"""Dream controls (issue 14), library side: kept colours, masks, guides, neurons, diversity.

Each control has a test that fails if it silently did nothing, measured on the real
EfficientNet-Lite0 where what the picture becomes matters, and on the random GoogLeNet for
mechanics. Images are tiny (64-128 px) and runs short.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dreamer import steer
from dreamer.colors import keep_colors, luminance, rgb_to_ycbcr, ycbcr_to_rgb
from dreamer.config import DreamConfig
from dreamer.errors import ConfigError, ImageError, UsageError
from dreamer.io.images import load_image, make_noise
from dreamer.masks import SNAP, as_mask, composite, fit_mask, load_mask
from dreamer.objectives import channel, class_logit, diversity, guide, layer_l2, neuron

LITE = dict(model="efficientnet-lite0", jitter=8, precision="fp32")


@pytest.fixture(scope="module")
def cat():
    """The sample cat photo at 96 px on its longest side: (1,3,72,96)."""
    return load_image("samples/chelsea.png", size=96)


def _chroma_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return (rgb_to_ycbcr(a)[:, 1:] - rgb_to_ycbcr(b)[:, 1:]).abs().mean().item()


def _luma_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return (luminance(a) - luminance(b)).abs().mean().item()


# --- kept colours -------------------------------------------------------------------------------


def test_ycbcr_round_trip_and_grey_has_no_chroma():
    rgb = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
    grey = torch.full((1, 3, 4, 4), 0.37)
    ycc = rgb_to_ycbcr(grey)
    assert torch.allclose(ycc[:, 0], torch.full((1, 4, 4), 0.37), atol=1e-6)
    assert ycc[:, 1:].abs().max() < 1e-6


def test_keep_colors_takes_luminance_from_the_result_and_chroma_from_the_original():
    g = torch.Generator().manual_seed(1)
    original = 0.25 + 0.5 * torch.rand(1, 3, 16, 16, generator=g)
    result = 0.3 + 0.4 * torch.rand(1, 3, 16, 16, generator=g)
    out = keep_colors(result, original)
    # nothing clips in these mid-range colours, so both parts are exact
    assert torch.allclose(luminance(out), luminance(result), atol=1e-5)
    assert torch.allclose(rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(original)[:, 1:], atol=1e-5)
    # an original of another size is scaled to the result's
    assert keep_colors(result, F.interpolate(original, size=(8, 8))).shape == result.shape


def test_keep_colors_dream_keeps_chroma_while_luminance_changes(lite0, cat):
    config = DreamConfig(layers=("block4",), octaves=2, steps=8, step_size=3.0, **LITE)
    plain = steer.dream(cat, lite0, config)
    kept = steer.dream(cat, lite0, config, controls=steer.Controls(keep_colors=True))
    assert _luma_gap(kept, cat) > 0.02  # the dream changed the picture ...
    assert _chroma_gap(kept, cat) < 0.004  # ... but not its colours
    assert _chroma_gap(plain, cat) > 3 * _chroma_gap(kept, cat)  # which the plain dream does
    assert torch.allclose(luminance(kept), luminance(plain), atol=0.02)  # same dream underneath


# --- masks --------------------------------------------------------------------------------------


def _half_mask(h: int, w: int) -> torch.Tensor:
    """Black on the left half, white on the right, with a soft ramp in the middle."""
    x = torch.linspace(-1, 1, w)
    return ((x - 0.0) * 4).clamp(0, 1).expand(h, w).clone()


def test_masked_dream_keeps_black_pixels_bit_identical(lite0, cat):
    config = DreamConfig(layers=("block3",), octaves=2, steps=4, step_size=3.0, **LITE)
    h, w = cat.shape[-2:]
    controls = steer.Controls(mask=_half_mask(h, w))
    out = steer.dream(cat, lite0, config, controls=controls).cpu()
    black = controls.mask[0, 0] == 0
    white = controls.mask[0, 0] == 1
    assert black.sum() > 0.4 * h * w and white.sum() > 0.3 * h * w
    assert torch.equal(out[0][:, black], cat[0][:, black])
    assert (out[0][:, white] - cat[0][:, white]).abs().mean() > 0.02


def test_mask_of_another_size_is_scaled_and_black_stays_exact(lite0, cat):
    config = DreamConfig(layers=("block3",), octaves=1, steps=3, step_size=3.0, **LITE)
    small = _half_mask(9, 12)  # 12x9 for a 96x72 image: scaled up
    out = steer.dream(cat, lite0, config, controls=steer.Controls(mask=small)).cpu()
    fitted = fit_mask(as_mask(small), tuple(cat.shape[-2:]))
    assert fitted.shape[-2:] == cat.shape[-2:]
    black = fitted[0, 0] == 0
    assert black[:, :30].all()  # the left third is black after scaling
    assert torch.equal(out[0][:, black], cat[0][:, black])


def test_mask_snaps_near_black_and_near_white_and_reads_colour_as_luma():
    m = torch.tensor([[0.0, SNAP, 0.5, 1.0 - SNAP]])
    snapped = as_mask(m)
    assert snapped.shape == (1, 1, 1, 4)
    assert snapped.flatten().tolist() == [0.0, 0.0, 0.5, 1.0]
    rgb = torch.zeros(3, 2, 2)
    rgb[:, 0, 0] = 1.0
    assert as_mask(rgb)[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_composite_is_exact_under_black():
    g = torch.Generator().manual_seed(2)
    original, result = torch.rand(2, 3, 5, 6, generator=g), torch.rand(2, 3, 5, 6, generator=g)
    mask = torch.zeros(1, 1, 5, 6)
    mask[..., 3:] = 1.0
    out = composite(result, original, mask)
    assert torch.equal(out[..., :3], original[..., :3])
    assert torch.allclose(out[..., 3:], result[..., 3:])


def test_all_black_mask_is_a_usage_error():
    with pytest.raises(UsageError, match="black everywhere") as info:
        steer.Controls(mask=torch.zeros(8, 8), mask_source="m.png")
    assert info.value.exit_code == 2
    with pytest.raises(UsageError):
        as_mask(torch.full((4, 4), SNAP / 2))  # JPEG-black counts as black


def test_mask_or_guide_that_is_not_an_image(tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("not an image")
    for load in (load_mask, steer.Guide.load):
        with pytest.raises(ImageError, match="not an image") as info:
            load(bogus)
        assert info.value.exit_code == 1
    with pytest.raises(UsageError, match="no such file"):
        steer.Guide.load(tmp_path / "missing.jpg=0.5")


# --- guides -------------------------------------------------------------------------------------


def _pooled(network, x: torch.Tensor, layer: str) -> torch.Tensor:
    node = network.resolve(layer).node
    with torch.no_grad():
        return network.extractor([node])(x.to(network.device))[node].float().mean((2, 3))[0]


def test_guided_dream_moves_features_towards_the_guide(lite0, cat):
    coffee = load_image("samples/coffee.png")
    config = DreamConfig(layers=("block4",), octaves=2, steps=8, **LITE)
    plain = steer.dream(cat, lite0, config)
    guided = steer.dream(cat, lite0, config, controls=steer.Controls(guides=(steer.Guide(coffee, source="coffee"),)))
    target = _pooled(lite0, load_image("samples/coffee.png", size=224), "block4")

    def closeness(x: torch.Tensor) -> float:
        return F.cosine_similarity(_pooled(lite0, x, "block4"), target, dim=0).item()

    assert closeness(guided) > closeness(plain) + 0.05


def test_guide_objective_pushes_each_position_to_its_best_match():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(6, 10, generator=g)
    acts = torch.randn(2, 6, 3, 4, generator=g, requires_grad=True)
    score = guide("n", features)({"n": acts})
    sims = torch.einsum("bcp,cn->bpn", acts.flatten(2), features)
    assert torch.allclose(score, sims.amax(2).mean(1) / 6)
    (grad,) = torch.autograd.grad(score.sum(), acts)
    best = sims.argmax(2)  # (B, P): the gradient at a position is its best guide vector / (C * P)
    expected = features[:, best].permute(1, 0, 2).reshape(2, 6, 3, 4) / (6 * 12)
    assert torch.allclose(grad, expected, atol=1e-6)
    same = guide("n", features.clone())
    assert same.key == guide("n", features).key and guide("n", features + 1).key != same.key


def test_guide_input_gradient_is_the_chain_rule_through_batchnorm(lite0, cat):
    """The gradient through the real network (BatchNorm in eval mode) equals the activation
    gradient pushed back by hand: einsum's oddly strided gradient must not reach BatchNorm."""
    node = lite0.resolve("block4").node
    coffee = steer.Guide(load_image("samples/coffee.png", size=96))
    objective = guide(node, coffee.features(lite0, node))
    extractor = lite0.extractor([node])
    x = cat.clone().requires_grad_(True)
    (direct,) = torch.autograd.grad(objective(extractor(x)).sum(), x)
    acts = extractor(cat)[node].detach().requires_grad_(True)
    (by_acts,) = torch.autograd.grad(objective({node: acts}).sum(), acts)
    x = cat.clone().requires_grad_(True)
    (chained,) = torch.autograd.grad(extractor(x)[node], x, grad_outputs=by_acts.clone(memory_format=torch.contiguous_format))
    assert torch.allclose(direct, chained, rtol=1e-4, atol=1e-5 * chained.abs().max().item())


def test_guide_of_any_size_is_scaled_to_the_training_size(lite0):
    wide = torch.rand(1, 3, 50, 300)
    feats = steer.guide_features(lite0, wide, lite0.resolve("block3").node)
    # 300x50 -> 224x37 at stride 16: a 3x14 grid
    assert feats.shape == (80, 3 * 14)
    with pytest.raises(UsageError, match="per side"):
        steer.guide_features(lite0, torch.rand(1, 3, 4, 400), lite0.resolve("block3").node)


def test_parse_guide_and_diversity(tmp_path):
    assert steer.parse_guide("flowers.jpg") == ("flowers.jpg", 1.0)
    assert steer.parse_guide("flowers.jpg=0.5") == ("flowers.jpg", 0.5)
    odd = tmp_path / "a=2.png"
    odd.write_bytes(b"")
    assert steer.parse_guide(str(odd)) == (str(odd), 1.0)  # a file that exists wins
    with pytest.raises(ConfigError, match="guide weight"):
        steer.parse_guide("flowers.jpg=lots")
    assert steer.parse_diversity("2") == steer.Diversity(2.0)
    assert steer.parse_diversity("mixed4a=0.5") == steer.Diversity(0.5, "mixed4a")
    for bad in ("0", "-1", "nan", "mixed4a=x", "many"):
        with pytest.raises(ConfigError, match="diversity"):
            steer.parse_diversity(bad)


def test_guide_composes_with_class_terms(lite0):
    coffee = steer.Guide(load_image("samples/coffee.png", size=64), weight=0.5, source="coffee")
    config = DreamConfig(layers=("block3", "block4=2"), classes=("espresso",), **LITE)
    objective = steer.steered_objective(lite0, config, steer.Controls(guides=(coffee,)))
    names = [t.name for _, t in objective.terms]
    weights = [w for w, _ in objective.terms]
    assert names == ["guide(_blocks.7)", "guide(_blocks.10)", "logit(967)"]
    assert weights == [0.5, 1.0, 1.0]
    # class terms alone: the guide acts at the model's default layer
    only_class = steer.steered_objective(lite0, config.replace(layers=()), steer.Controls(guides=(coffee,)))
    assert [t.name for _, t in only_class.terms] == ["guide(_blocks.7)", "logit(967)"]
    # the features are computed once per guide, network and layer
    assert coffee.features(lite0, "_blocks.7") is coffee.features(lite0, "_blocks.7")


# --- neurons ------------------------------------------------------------------------------------


def test_neuron_gradient_is_concentrated_at_the_centre(lite0):
    info = lite0.resolve("block2")  # stride 8, receptive field 67 px
    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(4), requires_grad=True)
    extractor = lite0.extractor([info.node])

    def input_gradient(objective) -> torch.Tensor:
        (grad,) = torch.autograd.grad(objective(extractor(x)).sum(), x)
        return grad.abs().sum(1)[0]

    g = input_gradient(neuron(info.node, 5))
    half = info.receptive_field // 2 + info.stride
    centre = slice(80 - half, 80 + half)
    inside = g[centre, centre].sum()
    assert inside > 0 and inside / g.sum() > 0.999  # nothing outside the unit's receptive field
    spread = input_gradient(channel(info.node, 5))
    assert spread[centre, centre].sum() / spread.sum() < 0.5  # the whole channel reaches everywhere


def test_neuron_position_is_a_fraction_of_the_grid():
    acts = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    assert neuron("n", 1)({"n": acts}).tolist() == acts[:, 1, 2, 2].tolist()
    assert neuron("n", 1, x=0.0, y=1.0)({"n": acts}).tolist() == acts[:, 1, 3, 0].tolist()
    assert neuron("n", 2, x=1.0, y=0.0)({"n": acts}).tolist() == acts[:, 2, 0, 4].tolist()
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="position"):
            neuron("n", 1, x=bad)
    with pytest.raises(ConfigError, match="channel"):
        neuron("n", 7)({"n": acts})


def test_neuron_specs_parse_print_and_build():
    from dreamer.config import LayerTarget, parse_layer_target
    from dreamer.objectives import build_objective

    assert parse_layer_target("mixed4c:97@center") == LayerTarget("mixed4c", (97,), 1.0, (0.5, 0.5))
    assert parse_layer_target("@deep:3@centre=2") == LayerTarget("@deep", (3,), 2.0, (0.5, 0.5))
    assert parse_layer_target("mixed4c:97@0.25,1").position == (0.25, 1.0)
    for spec in ("mixed4c:97@center", "mixed4c:97@0.25,0.5=2"):
        assert str(parse_layer_target(spec)) == spec  # what metadata and presets write back
    config = DreamConfig(layers=("mixed4a:97@center", "mixed4c=0.5"))
    objective = build_objective(config_model(), config.layers)
    assert [(w, t.name) for w, t in objective.terms] == [(1.0, "neuron(inception4a:97@center)"), (0.5, "l2(inception4c)")]


def config_model():
    from dreamer.models import get_spec

    return get_spec("googlenet")


@pytest.mark.parametrize(
    "spec, field, words",
    [
        ("mixed4c@center", "neuron", "no channel given"),
        ("mixed4c:3,4@center", "neuron", "2 channels given"),
        ("mixed4c:97@middle", "position", "fractions 0-1"),
        ("mixed4c:97@1.5,0", "position", "fractions 0-1"),
        ("mixed4c:97@0.5", "position", "fractions 0-1"),
        ("mixed4c:97@", "position", "fractions 0-1"),
    ],
)
def test_neuron_syntax_errors_are_usage_errors(spec, field, words):
    from dreamer.config import parse_layer_target

    with pytest.raises(ConfigError, match=words) as info:
        parse_layer_target(spec)
    assert info.value.field == field and info.value.exit_code == 2


def test_a_guide_cannot_steer_a_neuron(lite0):
    coffee = steer.Guide(load_image("samples/coffee.png", size=64))
    config = DreamConfig(layers=("block3:5@center",), **LITE)
    with pytest.raises(ConfigError, match="not on a neuron"):
        steer.steered_objective(lite0, config, steer.Controls(guides=(coffee,)))


# --- diversity ----------------------------------------------------------------------------------


def _gram_similarity(network, x: torch.Tensor, layer: str) -> float:
    """Mean cosine similarity between the Gram matrices of different images of a batch."""
    node = network.resolve(layer).node
    with torch.no_grad():
        a = network.extractor([node])(x.to(network.device))[node].float().flatten(2)
    grams = F.normalize(torch.bmm(a, a.transpose(1, 2)).flatten(1), dim=1)
    s = grams @ grams.T
    n = x.shape[0]
    return ((s.sum() - s.diagonal().sum()) / (n * (n - 1))).item()


def test_diversity_makes_a_batch_more_different(lite0):
    n = 3
    noise = torch.cat([make_noise((64, 64), seed=i, amplitude=0.01) for i in range(n)])
    config = DreamConfig(layers=("block3:5",), param="fft", transforms="standard", steps=40, **LITE)
    seeds = list(range(n))
    plain = steer.dream(noise, lite0, config, seeds=seeds)
    diverse = steer.dream(noise, lite0, config, seeds=seeds, controls=steer.Controls(diversity=50))
    # judged at a layer the term did not read (it compares Gram matrices at block3)
    assert _gram_similarity(lite0, diverse, "block5") < _gram_similarity(lite0, plain, "block5") - 0.05


def test_diversity_objective_and_batch_of_one(network):
    g = torch.Generator().manual_seed(5)
    same = torch.rand(1, 4, 3, 3, generator=g).expand(3, -1, -1, -1)
    assert torch.allclose(diversity("n")({"n": same}), torch.full((3,), -1.0))
    apart = torch.zeros(2, 2, 3, 3)
    apart[0, 0], apart[1, 1] = 1.0, 1.0  # different channels: orthogonal Gram matrices
    assert torch.allclose(diversity("n")({"n": apart}), torch.zeros(2))
    with pytest.raises(ConfigError, match="at least 2"):
        diversity("n")({"n": same[:1]})
    with pytest.raises(ConfigError, match="batch") as info:
        steer.dream(torch.rand(1, 3, 64, 64), network, DreamConfig(layers=("mixed3a",)),
                    controls=steer.Controls(diversity=1.0))
    assert info.value.exit_code == 2


def test_diversity_layer_defaults_and_composes(network):
    config = DreamConfig(layers=("mixed4a:97",))
    objective = steer.steered_objective(network, config, steer.Controls(diversity=steer.Diversity(2.0)))
    assert [(w, t.name) for w, t in objective.terms] == [(1.0, "l2(inception4a:97)"), (2.0, "diversity(inception4a)")]
    classes_only = steer.steered_objective(
        network, DreamConfig(layers=(), classes=("banana",)), steer.Controls(diversity=steer.Diversity(1.0))
    )
    assert classes_only.terms[-1][1].name == "diversity(inception4c)"  # @middle
    # the algebra: any objective minus a diversity term
    combined = 0.5 * neuron("inception4a", 97) + 3 * diversity("inception4a") - class_logit(1)
    assert [w for w, _ in combined.terms] == [0.5, 3.0, -1.0]
    assert layer_l2("x").key != neuron("x", 0).key


# --- the Python API -----------------------------------------------------------------------------


def test_api_controls_from_plain_values(network, tmp_path):
    import numpy as np
    from PIL import Image

    import dreamer

    photo = Image.open("samples/chelsea.png").convert("RGB").resize((80, 60))
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[:, 25:] = 255  # right side white; a smaller mask, scaled to the photo
    Image.fromarray(mask).save(tmp_path / "mask.png")
    fast = dict(network=network, layers=["mixed3a"], octaves=1, steps=2, jitter=2)
    out = dreamer.dream(photo, mask=tmp_path / "mask.png", keep_colors=True, **fast)
    before, after = np.asarray(photo), np.asarray(out)
    assert np.array_equal(after[:, :40], before[:, :40])  # under black: the same bytes
    assert np.abs(after[:, 60:].astype(int) - before[:, 60:]).mean() > 1
    variations = dreamer.dream(photo, batch=3, diversity=5, guide=photo, **fast)
    assert len(variations) == 3 and all(v.size == (80, 60) for v in variations)
    assert not np.array_equal(np.asarray(variations[0]), np.asarray(variations[1]))
    with pytest.raises(ConfigError, match="at least 2 images"):
        dreamer.dream(photo, diversity=5, **fast)
    with pytest.raises(ConfigError, match="batch"):
        dreamer.dream(torch.rand(2, 3, 64, 64), batch=2, **fast)
