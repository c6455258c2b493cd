"""Configuration: layer specs, validation with clear errors, round trips, flag precedence."""

from __future__ import annotations

import dataclasses
import math

import pytest

from dreamer.cli.common import config_from_flags
from dreamer.config import ClassTarget, DreamConfig, LayerTarget, parse_class_target, parse_layer_target
from dreamer.errors import ConfigError


@pytest.mark.parametrize(
    ("spec", "layer", "channels", "weight"),
    [
        ("mixed4c", "mixed4c", None, 1.0),
        ("  mixed4c ", "mixed4c", None, 1.0),
        ("mixed4c:97", "mixed4c", (97,), 1.0),
        ("mixed4c:10,20,30", "mixed4c", (10, 20, 30), 1.0),
        ("mixed4c:0-3", "mixed4c", (0, 1, 2, 3), 1.0),
        ("mixed4c:5,1-3,2", "mixed4c", (5, 1, 2, 3), 1.0),  # duplicates dropped, order kept
        ("mixed5a=0.5", "mixed5a", None, 0.5),
        ("mixed4c:0-1=-2", "mixed4c", (0, 1), -2.0),
        ("inception4c", "inception4c", None, 1.0),
        ("features.10", "features.10", None, 1.0),  # module paths of custom networks
        ("2", "2", None, 1.0),
        ("layer4.1.conv2:3=0.25", "layer4.1.conv2", (3,), 0.25),
    ],
)
def test_parse_layer_target(spec, layer, channels, weight):
    t = parse_layer_target(spec)
    assert (t.layer, t.channels, t.weight) == (layer, channels, weight)


@pytest.mark.parametrize(
    "spec",
    ["", "mixed4c:", "mixed4c:abc", "mixed4c:3-1", "mixed4c:-1", "mixed4c=abc", "mixed4c=inf", "mixed4c=nan",
     "mixed 4c", ":97", "mixed4c:0-99999"],
)
def test_bad_layer_specs(spec):
    with pytest.raises(ConfigError) as info:
        parse_layer_target(spec)
    assert info.value.exit_code == 2
    assert "invalid" in str(info.value)


@pytest.mark.parametrize("spec", ["mixed4c", "mixed4c:97", "mixed4c:0-15", "mixed4c:1-3,7,9-10=0.5", "mixed5a=-1.5"])
def test_layer_target_text_round_trips(spec):
    assert str(parse_layer_target(spec)) == spec


def test_layer_target_checks_its_fields():
    with pytest.raises(ConfigError):
        LayerTarget("")
    with pytest.raises(ConfigError):
        LayerTarget("mixed4c", channels=())
    with pytest.raises(ConfigError):
        LayerTarget("mixed4c", channels=(-1,))
    with pytest.raises(ConfigError):
        LayerTarget("mixed4c", weight=math.inf)
    assert LayerTarget("mixed4c", channels=[3, 4]).channels == (3, 4)


@pytest.mark.parametrize(
    ("spec", "name", "weight"),
    [("banana", "banana", 1.0), ("954", "954", 1.0), ("anemone fish=0.5", "anemone fish", 0.5), ("a=b", "a=b", 1.0)],
)
def test_parse_class_target(spec, name, weight):
    t = parse_class_target(spec)
    assert (t.name, t.weight) == (name, weight)
    assert ClassTarget(954).name == "954"


def test_defaults_are_the_classic_recipe():
    c = DreamConfig()
    assert c.model == "googlenet"
    assert [str(t) for t in c.layers] == ["mixed4c"]
    assert (c.octaves, c.octave_scale, c.steps, c.step_size, c.jitter) == (4, 1.4, 10, 1.5, 32)
    assert c.seed == 0 and c.param == "pixel"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("octaves", 0), ("octaves", 1.5), ("octaves", True), ("steps", 0), ("steps", -3),
        ("octave_scale", 1.0), ("octave_scale", 0.7), ("octave_scale", math.nan), ("octave_scale", math.inf),
        ("step_size", 0), ("step_size", -1.0), ("jitter", -1), ("jitter", 2.5), ("seed", -1), ("seed", 2**64),
        ("param", "wavelet"), ("transforms", "all"), ("precision", "fp8"), ("tile", 16), ("tv_weight", -0.1),
        ("blur", -1), ("learning_rate", 0), ("decorrelate", "yes"), ("model", ""), ("layers", ()),
        ("layers", (42,)),
    ],
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ConfigError) as info:
        DreamConfig(**{field: value})
    err = info.value
    assert err.exit_code == 2
    assert err.field == field
    assert field in str(err)


def test_largest_seed_works():
    import torch

    seed = DreamConfig(seed=2**64 - 1).seed
    assert torch.Generator().manual_seed(seed).initial_seed() == 2**64 - 1


def test_classes_alone_are_enough():
    c = DreamConfig(layers=(), classes=("banana",))
    assert c.classes == (ClassTarget("banana"),)


def test_config_is_frozen_and_replace_validates():
    c = DreamConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.octaves = 2  # type: ignore[misc]
    d = c.replace(octaves=2, layers=["mixed3a:1"])
    assert d.octaves == 2 and d.layers == (LayerTarget("mixed3a", (1,)),)
    assert c.octaves == 4
    with pytest.raises(ConfigError):
        c.replace(steps=0)
    assert hash(d) == hash(c.replace(octaves=2, layers=("mixed3a:1",)))


def test_dict_round_trip():
    c = DreamConfig(layers=("mixed4c:0-15", "mixed5a=0.5"), classes=("banana=2",), octaves=3, seed=9, tile=128)
    data = c.to_dict()
    assert data["layers"] == ["mixed4c:0-15", "mixed5a=0.5"]
    assert data["classes"] == ["banana=2"]
    assert DreamConfig.from_dict(data) == c


def test_unknown_key_suggests_the_field():
    with pytest.raises(ConfigError) as info:
        DreamConfig.from_dict({"octave": 3})
    assert "octaves" in str(info.value)


def _flags(**given):
    flags = {name: None for name in ("preset", "octaves", "octave_scale", "steps", "step_size", "jitter", "param",
                                      "transforms", "tv", "blur", "lr", "precision", "tile", "seed", "model")}
    flags.update(layers=(), classes=())
    flags.update(given)
    return flags


def test_flags_override_defaults_only_when_given():
    config, preset = config_from_flags(_flags())
    assert config == DreamConfig() and preset is None
    config, _ = config_from_flags(_flags(octaves=2, tv=0.1, lr=0.2, seed=3, layers=("mixed3a", "mixed5a=0.5")))
    assert config == DreamConfig(octaves=2, tv_weight=0.1, learning_rate=0.2, seed=3, layers=("mixed3a", "mixed5a=0.5"))


def test_class_flags_replace_the_default_layer():
    config, _ = config_from_flags(_flags(classes=("banana",)))
    assert config.layers == () and config.classes == (ClassTarget("banana"),)
    both, _ = config_from_flags(_flags(classes=("banana",), layers=("mixed4a",)))
    assert [str(t) for t in both.layers] == ["mixed4a"] and len(both.classes) == 1


def test_bad_flag_values_are_config_errors():
    with pytest.raises(ConfigError):
        config_from_flags(_flags(octave_scale=1.0))
    with pytest.raises(ConfigError):
        config_from_flags(_flags(layers=("mixed4c:x",)))


def test_one_layer_or_class_given_as_text_is_one_term():
    # a str is one layer spec, not a sequence of one-letter layers
    assert DreamConfig(layers="mixed4c").layers == (LayerTarget("mixed4c"),)
    assert DreamConfig(layers="mixed4c:3=0.5").layers == (LayerTarget("mixed4c", (3,), 0.5),)
    assert DreamConfig(layers=(), classes="banana").classes == (ClassTarget("banana"),)
    assert DreamConfig(layers=(), classes=954).classes == (ClassTarget("954"),)
    with pytest.raises(ConfigError) as info:
        DreamConfig(layers=42)
    assert info.value.field == "layers"


def test_override_names_the_whole_objective():
    base = DreamConfig()
    banana = base.override(classes=["banana"])
    assert banana.layers == () and banana.classes == (ClassTarget("banana"),)
    layered = banana.override(layers=["mixed3a"])
    assert layered.classes == () and [str(t) for t in layered.layers] == ["mixed3a"]
    both = base.override(layers=["mixed3a"], classes=["banana"])
    assert len(both.layers) == 1 and len(both.classes) == 1
    assert base.override(octaves=2) == base.replace(octaves=2)  # other fields: as given
    assert base.override() is base
    # replace stays literal
    assert base.replace(classes=("banana",)).layers == (LayerTarget("mixed4c"),)


def test_turning_the_opacity_off_drops_what_only_opacity_allows():
    sky = DreamConfig(param="fft", transforms="crops", opacity_cost=8.0, crop=(0.8, 1.8), backdrop="#5985bf,#8cb8f2",
                      classes=("parachute",), layers=())
    plain = sky.override(opacity_cost=0.0)
    assert plain.opacity_cost == 0 and plain.backdrop == () and plain.crop == (0.8, 1.0)
    assert sky.override(opacity_cost=0.0, crop=(0.3, 0.6)).crop == (0.3, 0.6)  # what is given stays
    assert sky.override(opacity_cost=2.0) == sky.replace(opacity_cost=2.0)  # a new price keeps both
    with pytest.raises(ConfigError, match="backdrop"):
        sky.override(opacity_cost=0.0, backdrop="#000000")  # asked for both: a clear error


def test_classic_keeps_the_objective_and_drops_what_only_a_render_does():
    render = DreamConfig(param="fft", transforms="crops", opacity_cost=8.0, grey_weight=50.0, views=4,
                         classes=("banana",), layers=())
    classic = render.classic(steps=3)
    assert (classic.param, classic.transforms, classic.opacity_cost, classic.steps) == ("pixel", "standard", 0.0, 3)
    assert classic.classes == render.classes and classic.layers == ()
    plain = DreamConfig(param="fft", transforms="none")
    assert plain.classic().transforms == "none"  # only crops have a classic counterpart to swap in
