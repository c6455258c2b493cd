"""The model registry: GoogLeNet's layer table against a forward pass, names and aliases,
and custom `torch.nn.Module`s wrapped with `Network.from_module`."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import dreamer
from dreamer.config import DreamConfig
from dreamer.errors import ConfigError, UnknownNameError
from dreamer.models import Network, get_spec, list_models
from dreamer.objectives import build_objective

PRIMARY = ("mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a", "mixed5b")


# --- the layer table ----------------------------------------------------------------------


def test_registry_lists_googlenet_as_default():
    assert "googlenet" in list_models()
    assert DreamConfig().model == "googlenet"
    spec = get_spec("GoogLeNet")  # names are case-insensitive
    assert spec.name == "googlenet" and spec.default_layer == "mixed4c"
    assert spec.min_size == 32


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownNameError) as info:
        get_spec("googlenett")
    assert info.value.suggestions[0] == "googlenet"
    assert info.value.exit_code == 2
    assert "dreamer models" in str(info.value)


def test_layer_table_matches_a_forward_pass(network):
    """Every layer's channels and stride are what the network really produces."""
    spec = get_spec("googlenet")
    h, w = 64, 96  # both divisible by the deepest stride (32)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        acts = network.extractor([info.node for info in spec.layers])(x)
    assert set(acts) == {info.node for info in spec.layers}
    for info in spec.layers:
        a = acts[info.node]
        assert a.shape[1] == info.channels, f"{info.name}: table says {info.channels}, forward gives {a.shape[1]}"
        if info.spatial:
            assert a.dim() == 4
            assert a.shape[-2:] == (h // info.stride, w // info.stride), f"{info.name}: stride {info.stride}"
        else:
            assert a.dim() == 2 and info.stride is None


def test_layer_table_is_ordered_shallow_to_deep_and_complete():
    spec = get_spec("googlenet")
    names = [info.name for info in spec.layers]
    for name in PRIMARY + ("conv1", "conv2", "conv3", "pool1", "pool2", "pool3", "pool4", "logits"):
        assert name in names
    order = {node: i for i, node in enumerate(spec.stages)}
    positions = [order[info.node] for info in spec.layers]
    assert positions == sorted(positions)
    strides = [info.stride for info in spec.layers if info.spatial]
    assert strides == sorted(strides)
    fields = [info.receptive_field for info in spec.layers if info.spatial]
    assert fields == sorted(fields)


def _grow(module: nn.Module, rf: int, jump: int) -> tuple[int, int]:
    """Receptive field and jump (input pixels per output step) after `module`, from its geometry."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        s = module.stride if isinstance(module.stride, int) else module.stride[0]
        return rf + (k - 1) * jump, jump * s
    if hasattr(module, "branch1"):  # an Inception block: parallel branches, concatenated
        grown = [_grow(b, rf, jump) for b in (module.branch1, module.branch2, module.branch3, module.branch4)]
        assert len({j for _, j in grown}) == 1
        return max(r for r, _ in grown), grown[0][1]
    for child in module.children():
        rf, jump = _grow(child, rf, jump)
    return rf, jump


def test_receptive_fields_and_strides_match_the_modules(network):
    spec = get_spec("googlenet")
    rf, jump = 1, 1
    table = {info.node: info for info in spec.layers if info.spatial}
    for node in spec.stages:
        if node not in table and not node.startswith(("conv", "maxpool", "inception")):
            continue
        rf, jump = _grow(network.module.get_submodule(node), rf, jump)
        if node in table:
            assert (table[node].receptive_field, table[node].stride) == (rf, jump), table[node].name


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("inception4c", "mixed4c"),
        ("inception3a", "mixed3a"),
        ("inception5b", "mixed5b"),
        ("conv2d0", "conv1"),
        ("conv2d1", "conv2"),
        ("conv2d2", "conv3"),
        ("maxpool1", "pool1"),
        ("maxpool0", "pool1"),
        ("MIXED4C", "mixed4c"),
        ("fc", "logits"),
        ("softmax2_pre_activation", "logits"),
    ],
)
def test_aliases_resolve(network, alias, name):
    info = network.resolve(alias)
    assert info.name == name
    assert network.resolve(name) == info


def test_every_alias_resolves_to_its_layer(network):
    for info in network.layers():
        assert network.resolve(info.name) is info
        for alias in info.aliases:
            assert network.resolve(alias) is info


def test_unknown_layer_suggests_close_names(network):
    with pytest.raises(UnknownNameError) as info:
        network.resolve("mixed4x")
    err = info.value
    assert err.exit_code == 2
    assert "mixed4c" in err.suggestions
    assert all(s.startswith("mixed4") for s in err.suggestions)
    assert "dreamer layers" in str(err)
    with pytest.raises(UnknownNameError) as info:
        network.resolve("inception4")
    assert any(s.startswith("inception4") for s in info.value.suggestions)


def test_layer_is_known_without_loading_the_network():
    spec = get_spec("googlenet")
    assert spec.resolve("inception4c").name == "mixed4c"
    with pytest.raises(UnknownNameError):
        spec.resolve("mixed6a")


@pytest.mark.parametrize("spec", ["mixed4c:512", "mixed4c:0-512", "mixed3a:10,256", "logits:1000"])
def test_channel_out_of_range(network, spec):
    with pytest.raises(ConfigError) as info:
        build_objective(network, DreamConfig(layers=(spec,)).layers)
    assert info.value.exit_code == 2
    assert "channel" in str(info.value)


def test_last_channel_is_in_range(network):
    objective = build_objective(network, DreamConfig(layers=("mixed4c:511", "mixed3a:0-255")).layers)
    assert set(objective.nodes) == {"inception4c", "inception3a"}


def test_network_is_frozen_in_eval_mode(network):
    assert not network.module.training
    assert all(not p.requires_grad for p in network.module.parameters())
    assert network.device == torch.device("cpu")
    assert network.name == "googlenet" and network.weights == "random:0"
    assert len(network.categories) == 1000


# --- your own torch.nn.Module -------------------------------------------------------------


def _sequential(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1),
    )


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = _sequential(1)
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def _count_calls(module: nn.Module, counts: list):
    return module.register_forward_hook(lambda *_: counts.append(1))


def test_custom_module_by_index_dreams(image):
    net = Network.from_module(_sequential())
    assert net.resolve("2").node == "2"
    calls: list = []
    handle = _count_calls(net.module[4], calls)
    scores: list = []
    try:
        out = dreamer.dream(
            image, network=net, layers=["2"], octaves=1, steps=3, jitter=2,
            progress=lambda p: scores.append(p.objective.item()),
        )
    finally:
        handle.remove()
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
    assert (out - image).abs().mean() > 1e-3
    assert scores[-1] > scores[0]
    assert calls == [], "the module after the requested one ran"


def test_custom_module_by_path(image):
    model = Nested()
    net = Network.from_module(model, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    head_calls: list = []
    handle = _count_calls(model.head, head_calls)
    try:
        out = dreamer.dream(image, network=net, layers=["features.3"], octaves=2, steps=2, jitter=2)
    finally:
        handle.remove()
    assert out.shape == image.shape
    assert (out - image).abs().mean() > 1e-3
    assert head_calls == []
    # the model itself is untouched and usable afterwards
    assert model(image).shape == (1, 10)


def test_custom_module_applies_its_own_normalisation(image):
    model = nn.Sequential(nn.Identity(), nn.Conv2d(3, 2, 1))
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    net = Network.from_module(model, mean=mean, std=std)
    with torch.no_grad():
        got = net.extractor(["0"])(image)["0"]
    expected = (image - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(got, expected)


def test_custom_module_unknown_path_suggests_close_names():
    net = Network.from_module(Nested())
    with pytest.raises(UnknownNameError) as info:
        net.resolve("feature.3")
    assert "features.3" in info.value.suggestions
    with pytest.raises(UnknownNameError):
        net.resolve("")


def test_custom_module_layer_that_never_runs_is_an_error(image):
    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Conv2d(3, 4, 3)
            self.unused = nn.Conv2d(4, 4, 3)

        def forward(self, x):
            return self.used(x)

    net = Network.from_module(Skips())
    with pytest.raises(ConfigError):
        dreamer.dream(image, network=net, layers=["unused"], octaves=1, steps=1)


def test_custom_module_is_frozen_and_unchanged(image):
    model = _sequential()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dreamer.dream(image, network=Network.from_module(model), layers=["4"], octaves=1, steps=2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_custom_module_channel_out_of_range(image):
    net = Network.from_module(_sequential())
    with pytest.raises(ConfigError) as info:
        dreamer.dream(image, network=net, layers=["4:4"], octaves=1, steps=1)  # "4" has channels 0-3
    assert "0-3" in str(info.value)
    with pytest.raises(ConfigError):
        dreamer.channel("4", 9)(net.extractor(["4"])(image))
    out = dreamer.dream(image, network=net, layers=["4:3"], octaves=1, steps=1)
    assert out.shape == image.shape
