"""Seeing inside the network: grids, activation maps, filters, occlusion, deconvnet, channels.

CPU, the seeded random GoogLeNet from conftest, images of 64x80 pixels.
"""

from __future__ import annotations

from collections import OrderedDict

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dreamer.errors import ConfigError, DreamerError, UnknownNameError, UsageError
from dreamer.visualize import activations as A
from dreamer.visualize import channels as CH
from dreamer.visualize import deconv as D
from dreamer.visualize import filters as FL
from dreamer.visualize import grid as G
from dreamer.visualize import occlusion as O
from dreamer.visualize.labels import text_mask


# ---------------------------------------------------------------------------- grids and labels


def test_grid_puts_each_tile_at_its_layout_origin():
    colours = torch.linspace(0.1, 0.9, 5)
    tiles = colours.view(5, 1, 1, 1).expand(5, 3, 10, 14).clone()
    tiles[:, 0] = 1 - tiles[:, 0]  # not grey, so the background cannot pass for a tile
    layout = G.grid_layout(5, (10, 14), columns=3, labelled=True, title=True)
    sheet = G.make_grid(tiles, labels=list("abcde"), columns=3, title="five")
    assert tuple(sheet.shape) == (3, *layout.size)
    assert layout.size[1] == 4 + 3 * (14 + 4)  # three columns
    for i, (top, left) in enumerate(layout.origins):
        assert torch.allclose(sheet[:, top : top + 10, left : left + 14], tiles[i])
    # the labels put ink in the strip under the first tile
    top, left = layout.origins[0]
    strip = sheet[:, top + 10 : top + 10 + layout.label_height, left : left + 14]
    assert strip.max() > 0.5


def test_grid_rejects_wrong_label_count():
    with pytest.raises(ValueError):
        G.make_grid(torch.rand(3, 3, 8, 8), labels=["a"])


def test_colormap_hits_its_anchors_and_keeps_shape():
    values = torch.tensor([[0.0, 1.0], [0.5, 2.0]])
    rgb = G.colormap(values, "gray")
    assert rgb.shape == (3, 2, 2)
    assert torch.allclose(rgb[:, 0, 0], torch.zeros(3))
    assert torch.allclose(rgb[:, 0, 1], torch.ones(3))
    assert torch.allclose(rgb[:, 1, 0], torch.full((3,), 0.5))
    assert torch.allclose(rgb[:, 1, 1], torch.ones(3))  # clamped
    heat = G.colormap(torch.linspace(0, 1, 11), "heat")
    brightness = heat.sum(0)
    assert brightness[-1] > brightness[5] > brightness[0]


def test_text_mask_has_ink_and_respects_width():
    mask = text_mask("mixed4c 97", 16)
    assert mask.shape[0] == 16 and mask.max() > 0.5
    short = text_mask("a very long label that will not fit", 16, max_width=40)
    assert short.shape[1] <= 40
    assert text_mask("", 12).max() == 0


def test_draw_box_outlines_only_the_border():
    img = torch.zeros(3, 20, 20)
    out = G.draw_box(img, (5, 5, 15, 15), color=(1, 1, 1), width=1)
    assert out[:, 5, 5:15].min() == 1 and out[:, 14, 5:15].min() == 1
    assert out[:, 6:14, 6:14].max() == 0  # inside untouched
    assert img.max() == 0  # the input is not modified


# ---------------------------------------------------------------------------- activations


def test_activation_maps_match_a_direct_forward_pass(network, image):
    maps = A.activation_maps(network, image, "mixed4c")
    direct = network.extractor(["inception4c"])(image)["inception4c"][0]
    assert maps.shape == direct.shape and maps.shape[0] == 512
    assert torch.allclose(maps, direct, atol=1e-5)


def test_strongest_channels_are_the_k_highest_means(network, image):
    maps = A.activation_maps(network, image, "mixed3b")
    picked = A.strongest_channels(maps, 7)
    means = maps.flatten(1).mean(1)
    expected = torch.argsort(means, descending=True)[:7]
    assert picked.tolist() == expected.tolist()
    assert means[picked[-1]] >= means[torch.argsort(means, descending=True)[7]]
    by_max = A.strongest_channels(maps, 3, by="max")
    assert by_max.tolist() == torch.argsort(maps.flatten(1).amax(1), descending=True)[:3].tolist()
    assert len(A.strongest_channels(maps, 10_000)) == maps.shape[0]


def test_activation_tiles_show_each_channel_in_place():
    maps = torch.zeros(5, 4, 4)
    maps[3, 1, 2] = 2.0  # one hot unit in channel 3, row 1, column 2
    maps[1] = 1.0
    tiles = A.activation_tiles(maps, [3, 1], tile=(40, 40))
    assert tiles.shape == (2, 3, 40, 40)
    hot = tiles[0].sum(0)
    y, x = divmod(int(hot.argmax()), 40)
    assert 10 <= y < 20 and 20 <= x < 30  # the block of unit (1, 2)
    assert torch.allclose(hot[:10], hot[0, 0].expand(10, 40))  # the rest is one colour
    # layer-wide scaling: channel 1 (half the layer's max) is darker than channel 3's hot unit
    shared = A.activation_tiles(maps, [3, 1], tile=(40, 40), normalize="layer")
    assert shared[1].sum(0).max() < shared[0].sum(0).max()


def test_activation_sheet_has_k_tiles_of_the_right_size(network, image):
    k = 5
    maps = A.activation_maps(network, image, "mixed4c")
    sheet, shown = A.activation_sheet(network, image, "mixed4c", top=k, tile=60)
    assert shown == A.strongest_channels(maps, k).tolist()
    size = A.tile_size((64, 80), 60)
    assert size == (48, 60)
    tiles = A.activation_tiles(maps, shown, image=image, tile=size)
    assert tiles.shape == (k, 3, 48, 60)
    layout = G.grid_layout(k, size, labelled=True, title=True)
    assert tuple(sheet.shape) == (3, *layout.size)
    for i, (top, left) in enumerate(layout.origins):
        assert torch.allclose(sheet[:, top : top + 48, left : left + 60], tiles[i], atol=1e-6)


def test_activation_overlay_keeps_tile_size_and_shows_the_photo(network, image):
    sheet, shown = A.activation_sheet(network, image, "mixed3a", top=2, overlay=True, tile=40)
    maps = A.activation_maps(network, image, "mixed3a")
    tiles = A.activation_tiles(maps, shown, image=image, tile=(32, 40), overlay=True)
    assert tiles.shape == (2, 3, 32, 40)
    plain = A.activation_tiles(maps, shown, image=image, tile=(32, 40))
    assert not torch.allclose(tiles, plain)


def test_activations_refuse_layers_without_maps_and_bad_names(network, image):
    with pytest.raises(UsageError, match="no spatial maps"):
        A.activation_maps(network, image, "logits")
    with pytest.raises(UnknownNameError) as info:
        A.activation_maps(network, image, "mixed4x")
    assert "mixed4c" in info.value.suggestions
    with pytest.raises(ConfigError):
        A.activation_sheet(network, image, "mixed4c", channels=[512])


# ---------------------------------------------------------------------------- filters


def test_conv1_filters_are_64_colour_tiles_of_the_weights(network):
    name, node, conv = FL.find_conv(network)
    assert (name, node) == ("conv1", "conv1.conv")
    tiles = FL.filter_tiles(conv.weight, tile=56)
    assert tiles.shape == (64, 3, 56, 56)  # 7x7 enlarged 8 times
    w = conv.weight[10]
    expected = 0.5 + 0.5 * w / w.abs().max()
    assert torch.allclose(tiles[10][:, ::8, ::8], expected, atol=1e-6)
    sheet, facts = FL.filters_sheet(network)
    assert facts["shape"] == (64, 3, 7, 7)
    layout = G.grid_layout(64, (56, 56), labelled=True, title=True)
    assert tuple(sheet.shape) == (3, *layout.size)
    top, left = layout.origins[10]
    assert torch.allclose(sheet[:, top : top + 56, left : left + 56], tiles[10], atol=1e-6)


def test_deeper_filters_are_refused_or_shown_per_input_channel(network):
    with pytest.raises(UsageError, match="input channels"):
        FL.filters_sheet(network, "conv3")
    with pytest.raises(UsageError, match="block of 6 convolutions"):
        FL.filters_sheet(network, "mixed4c")
    with pytest.raises(UsageError, match="no convolution"):
        FL.filters_sheet(network, "pool1")
    sheet, facts = FL.filters_sheet(network, "conv3:5", tile=24)
    assert facts["channel"] == 5 and facts["shape"] == (192, 64, 3, 3)
    tiles = FL.filter_tiles(network.module.conv3.conv.weight, channel=5, tile=24)
    assert tiles.shape == (64, 3, 24, 24)
    with pytest.raises(ConfigError):
        FL.filters_sheet(network, "conv3:192")
    # a convolution inside a block, by module path
    _, facts = FL.filters_sheet(network, "inception4c.branch2.1:0")
    assert facts["node"] == "inception4c.branch2.1.conv"


# ---------------------------------------------------------------------------- occlusion


def test_patch_starts_cover_the_whole_side():
    assert O.patch_starts(64, 32, 16) == (0, 16, 32)
    assert O.patch_starts(80, 32, 20) == (0, 20, 40, 48)  # a last patch flush with the edge
    assert O.patch_starts(30, 32, 8) == (0,)


def test_occluding_the_whole_image_changes_the_probability(network, image):
    result = O.occlusion_map(network, image, patch=100, stride=8)
    assert result.drop.shape == (1, 1)
    grey = O.class_probabilities(network, torch.full_like(image, 0.5))[result.class_index]
    assert float(result.probability[0, 0]) == pytest.approx(float(grey), rel=1e-4, abs=1e-7)
    assert abs(float(result.drop[0, 0])) > 1e-6
    assert result.class_index == int(O.class_probabilities(network, image).argmax())


def test_occlusion_map_grid_shape_and_values(network, image):
    result = O.occlusion_map(network, image, 7, patch=32, stride=16, batch_size=5)
    assert result.ys == (0, 16, 32) and result.xs == (0, 16, 32, 48)
    assert result.drop.shape == (3, 4) and result.heat.shape == (64, 80)
    # one position by hand: the patch at row 16, column 32
    occluded = image.clone()
    occluded[:, :, 16:48, 32:64] = 0.5
    p = O.class_probabilities(network, occluded)[7]
    assert float(result.probability[1, 2]) == pytest.approx(float(p), rel=1e-4, abs=1e-7)
    assert float(result.drop[1, 2]) == pytest.approx(result.baseline - float(p), abs=1e-6)
    # the corner pixel is covered by the first patch only
    assert float(result.heat[0, 0]) == pytest.approx(float(result.drop[0, 0]), abs=1e-7)


def test_occlusion_batched_equals_unbatched(network, image):
    one = O.occlusion_map(network, image, 3, patch=24, stride=20, batch_size=1)
    many = O.occlusion_map(network, image, 3, patch=24, stride=20, batch_size=64)
    assert torch.allclose(one.probability, many.probability, rtol=1e-4, atol=1e-7)


def test_occlusion_overlay_is_an_image_of_the_photo_size(network, image):
    result = O.occlusion_map(network, image, patch=32, stride=32)
    over = O.occlusion_overlay(image, result)
    assert over.shape == (3, 64, 80) and 0 <= over.min() and over.max() <= 1


# ---------------------------------------------------------------------------- deconvnet


def test_relu_rules_replace_only_the_backward_and_are_restored():
    original = F.relu
    x = torch.tensor([-1.0, 2.0, 3.0], requires_grad=True)
    upstream = torch.tensor([5.0, -1.0, 2.0])
    expected = {"guided": [0.0, 0.0, 2.0], "deconvnet": [5.0, 0.0, 2.0], "gradient": [0.0, -1.0, 2.0]}
    for rule, grads in expected.items():
        with D.relu_rule(rule):
            y = F.relu(x)
            # nn.ReLU goes through the same function
            y2 = nn.ReLU(inplace=True)(x.clone())
        assert y.tolist() == [0.0, 2.0, 3.0] and y2.tolist() == [0.0, 2.0, 3.0]
        (g,) = torch.autograd.grad(y, x, upstream)
        assert g.tolist() == grads, rule
        assert F.relu is original
    with pytest.raises(RuntimeError):
        with D.relu_rule("guided"):
            assert F.relu is not original
            raise RuntimeError("boom")
    assert F.relu is original and torch.nn.functional.relu is original
    with pytest.raises(ConfigError):
        with D.relu_rule("backwards"):
            pass


def test_deconv_has_input_shape_is_not_zero_and_differs_from_gradient(network, image):
    maps = A.activation_maps(network, image, "mixed4c")
    channel = int(A.strongest_channels(maps, 1))
    guided, facts = D.unit_gradient(network, image, f"mixed4c:{channel}", rule="guided")
    plain, _ = D.unit_gradient(network, image, f"mixed4c:{channel}", rule="gradient")
    deconvnet, _ = D.unit_gradient(network, image, f"mixed4c:{channel}", rule="deconvnet")
    assert guided.shape == image.shape == plain.shape == deconvnet.shape
    assert guided.abs().max() > 0 and deconvnet.abs().max() > 0
    assert not torch.allclose(guided, plain) and not torch.allclose(deconvnet, plain)
    # the unit is the channel's strongest position
    y, x = facts["position"]
    assert facts["activation"] == pytest.approx(float(maps[channel].max()), rel=1e-5)
    assert float(maps[channel, y, x]) == pytest.approx(float(maps[channel].max()), rel=1e-5)
    assert F.relu is torch.nn.functional.relu and "visualize" not in F.relu.__module__
    picture, _ = D.reconstruct(network, image, f"mixed4c:{channel}")
    assert picture.shape == (3, 64, 80) and picture.min() >= 0 and picture.max() <= 1


def test_plain_rule_is_the_autograd_gradient(network, image):
    _, facts = D.unit_gradient(network, image, "mixed3a:5", rule="gradient", position="all")
    grad, _ = D.unit_gradient(network, image, "mixed3a:5", rule="gradient", position="all")
    x = image.clone().requires_grad_(True)
    unit = network.extractor(["inception3a"])(x)["inception3a"][0, 5].sum()
    (expected,) = torch.autograd.grad(unit, x)
    assert torch.allclose(grad, expected, atol=1e-6)
    assert facts["position"] is None


def test_deconv_needs_one_channel_and_a_relu(image):
    from dreamer.models import Network

    def small(act: nn.Module) -> Network:
        layers = OrderedDict(first=nn.Conv2d(3, 4, 3), act=act, last=nn.Conv2d(4, 4, 3))
        return Network.from_module(nn.Sequential(layers))

    net = small(nn.Tanh())
    with pytest.raises(DreamerError, match="did not apply"):
        D.unit_gradient(net, image, "last:1", rule="guided")
    grad, _ = D.unit_gradient(net, image, "last:1", rule="gradient")
    assert grad.abs().max() > 0
    guided, _ = D.unit_gradient(small(nn.ReLU()), image, "last:1", rule="guided")
    assert guided.shape == image.shape


def test_deconv_channel_errors(network, image):
    with pytest.raises(UsageError, match="needs one channel"):
        D.unit_gradient(network, image, "mixed4c")
    with pytest.raises(UsageError, match="one channel"):
        D.unit_gradient(network, image, "mixed4c:1,2")
    with pytest.raises(ConfigError):
        D.unit_gradient(network, image, "mixed4c:512")


# ---------------------------------------------------------------------------- channels


def test_channel_batch_objective_reads_each_images_own_channel():
    acts = {"n": torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)}
    score = CH.channel_batch_objective("n", [2, 0])(acts)
    assert score.tolist() == [acts["n"][0, 2].mean().item(), acts["n"][1, 0].mean().item()]
    with pytest.raises(ValueError):
        CH.channel_batch_objective("n", [1])(acts)


def test_grow_channels_raises_each_channel(network):
    from dreamer.io.images import make_noise

    # two channels that respond to their own starting noise (a dead unit has no gradient)
    config = CH.channels_config("mixed3a", [0], param="pixel", steps=3, octaves=1, jitter=4, transforms="none")
    noise = torch.cat([make_noise((48, 48), seed=config.seed + c) for c in range(32)])
    first = network.extractor(["inception3a"])(noise)["inception3a"]
    chans = [c for c in range(32) if first[c, c].mean() > 0][:2]
    assert len(chans) == 2
    grown = CH.grow_channels(network, "mixed3a", chans, size=(48, 48), config=config, batch_size=2)
    assert grown.shape == (2, 3, 48, 48) and grown.min() >= 0 and grown.max() <= 1
    start = torch.cat([make_noise((48, 48), seed=config.seed + c) for c in chans])
    before = network.extractor(["inception3a"])(start)["inception3a"]
    after = network.extractor(["inception3a"])(grown)["inception3a"]
    for b, c in enumerate(chans):
        assert after[b, c].mean() > before[b, c].mean()
    # one at a time gives the same pictures (each image has its own seed and objective)
    alone = CH.grow_channels(network, "mixed3a", chans[1:], size=(48, 48), config=config)
    assert torch.allclose(alone[0], grown[1], atol=1e-4)
    sheet = CH.channels_sheet(grown, chans, "mixed3a")
    assert tuple(sheet.shape) == (3, *G.grid_layout(2, (48, 48), labelled=True).size)


def test_grow_channels_fft_when_available(network):
    pytest.importorskip("dreamer.loops.render")
    config = CH.channels_config("mixed3a", [1, 2], param="fft", steps=2)
    both = CH.grow_channels(network, "mixed3a", [1, 2], size=(40, 40), config=config)
    alone = CH.grow_channels(network, "mixed3a", [2], size=(40, 40), config=config)
    assert both.shape == (2, 3, 40, 40)
    assert torch.allclose(alone[0], both[1], atol=1e-4)


def test_grow_channels_checks_channels(network):
    with pytest.raises(ConfigError):
        CH.grow_channels(network, "mixed3a", [256], size=(40, 40))
    with pytest.raises(UsageError):
        CH.grow_channels(network, "mixed3a:3", [3], size=(40, 40))


def test_relu6_rules_rectify_like_relu_keep_the_clip_and_leave_other_hardtanh_alone():
    x = torch.tensor([-1.0, 2.0, 7.0, 3.0], requires_grad=True)
    upstream = torch.tensor([5.0, -1.0, 4.0, 2.0])
    expected = {"guided": [0.0, 0.0, 0.0, 2.0], "deconvnet": [5.0, 0.0, 0.0, 2.0]}
    for rule, grads in expected.items():
        with D.relu_rule(rule) as counter:
            y = nn.ReLU6()(x)
            # a hardtanh that is not a rectifier keeps its own forward and backward
            t = F.hardtanh(x, -1.0, 1.0)
        assert counter.calls == 1
        assert y.tolist() == [0.0, 2.0, 6.0, 3.0]
        (g,) = torch.autograd.grad(y, x, upstream)
        assert g.tolist() == grads, rule
        (gt,) = torch.autograd.grad(t, x, upstream)
        assert gt.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert F.hardtanh is torch.nn.functional.hardtanh and "visualize" not in F.hardtanh.__module__


def test_guided_backprop_applies_to_efficientnet_lite(lite0):
    from dreamer.io.images import load_image

    image = load_image(Path(__file__).resolve().parent.parent / "samples" / "chelsea.png", size=128)
    maps = A.activation_maps(lite0, image, "block3")
    channel = int(A.strongest_channels(maps, 1))
    guided, _ = D.unit_gradient(lite0, image, f"block3:{channel}", rule="guided")
    plain, _ = D.unit_gradient(lite0, image, f"block3:{channel}", rule="gradient")
    assert guided.abs().max() > 0
    assert not torch.allclose(guided, plain)
