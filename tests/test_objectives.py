"""Objectives as values: sums, multiples, products refused, tileability, shared validation."""

from __future__ import annotations

import pytest
import torch

from dreamer.config import ClassTarget, LayerTarget
from dreamer.errors import ConfigError, UnknownNameError
from dreamer.objectives import Objective, build_objective, channel, class_logit, layer_l2
from dreamer.targets import check_channels, resolve_targets


def _acts(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randn(2, 8, 5, 6, generator=g),
        "b": torch.randn(2, 4, 3, 3, generator=g),
        "fc": torch.randn(2, 10, generator=g),
    }


def test_product_of_two_objectives_is_a_clear_type_error():
    with pytest.raises(TypeError, match="product of two objectives is not defined"):
        layer_l2("a") * channel("a", 1)
    with pytest.raises(TypeError, match="product of two objectives is not defined"):
        (layer_l2("a") + 1.0) * (2.0 * channel("b", 0))
    with pytest.raises(TypeError):
        layer_l2("a") / channel("a", 1)
    with pytest.raises(TypeError):
        layer_l2("a") * "2"


def test_sums_multiples_and_constants_compute_what_they_say():
    acts = _acts()
    a, b = acts["a"], acts["b"]
    objective = 0.5 * channel("a", 3) - layer_l2("b", [1, 2]) / 4 + 2.0 - (1.5 - class_logit(7, "fc"))
    expected = 0.5 * a[:, 3].mean((1, 2)) - b[:, 1:3].pow(2).mean((1, 2, 3)) / 4 + 2.0 - 1.5 + acts["fc"][:, 7]
    torch.testing.assert_close(objective(acts), expected)
    assert set(objective.nodes) == {"a", "b", "fc"}
    # a sum is flat: its terms are leaves, however it was built
    assert all(t.terms == ((1.0, t),) for _, t in objective.terms)
    assert len(objective.terms) == 3 and objective.offset == pytest.approx(0.5)


def test_a_thousand_summed_terms_evaluate_without_recursion():
    acts = _acts()
    objective = channel("a", 0)
    for i in range(1, 1500):  # built one addition at a time, the worst case for nesting
        objective = objective + channel("a", i % 8)
    total = sum(channel("a", i % 8) for i in range(1000))
    by_channel = acts["a"].mean((2, 3))  # (B, 8)
    torch.testing.assert_close(total(acts), by_channel.repeat(1, 125).sum(1), rtol=1e-5, atol=1e-4)
    assert objective(acts).shape == (2,)
    assert len(objective.terms) == 1500
    hash(objective.key)
    assert isinstance(objective.name, str)


def test_tileable_is_declared_and_inherited():
    assert layer_l2("a").tileable and channel("a", 2).tileable
    assert not class_logit(3, "fc").tileable
    custom = Objective(lambda acts: acts["a"].amax((1, 2, 3)), ["a"], "max")
    assert not custom.tileable
    assert (0.5 * layer_l2("a") - channel("b", 1) + 3.0).tileable
    assert not (layer_l2("a") + class_logit(3, "fc")).tileable
    assert not (layer_l2("a") + custom).tileable
    assert Objective(lambda acts: acts["a"].mean((1, 2, 3)), ["a"], "mean", tileable=True).tileable
    with pytest.raises(ValueError, match="one node"):
        Objective(lambda acts: acts["a"].mean() + acts["b"].mean(), ["a", "b"], "two", tileable=True)


def test_keys_tell_objectives_apart_and_match_equal_ones():
    assert (0.5 * layer_l2("a", [1, 2]) + channel("b", 0)).key == (0.5 * layer_l2("a", [1, 2]) + channel("b", 0)).key
    assert (0.5 * layer_l2("a") + channel("b", 0)).key != (0.25 * layer_l2("a") + channel("b", 0)).key
    assert (layer_l2("a") + 1.0).key != layer_l2("a").key
    f1 = Objective(lambda acts: acts["a"].mean((1, 2, 3)), ["a"], "custom")
    f2 = Objective(lambda acts: acts["a"].mean((1, 2, 3)), ["a"], "custom")
    assert f1.key != f2.key and (2 * f1).key != (2 * f2).key


def test_sum_of_nothing_but_zero_is_the_objective_itself():
    objective = layer_l2("a")
    assert sum([objective]) is objective


def test_build_objective_checks_names_channels_and_classes_in_one_place(network):
    with pytest.raises(UnknownNameError):
        build_objective(network, (LayerTarget("mixed4x"),))
    with pytest.raises(ConfigError, match="has channels 0-"):
        build_objective(network, (LayerTarget("mixed4c", (9999,)),))
    with pytest.raises(UnknownNameError):
        build_objective(network, (), (ClassTarget("not a class at all"),))
    with pytest.raises(ConfigError, match="at least one layer or class"):
        build_objective(network)
    resolved = resolve_targets(network, (LayerTarget("mixed4c", (1, 2)),), (ClassTarget("banana", 0.5),))
    assert resolved.layers[0][0].node == "inception4c"
    assert resolved.classes == ((954, ClassTarget("banana", 0.5)),)
    info = network.resolve("mixed3a")
    check_channels(info, [0, info.channels - 1])
    with pytest.raises(ConfigError, match=f"0-{info.channels - 1}"):
        check_channels(info, [info.channels])
