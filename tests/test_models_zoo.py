"""Every registry model: its layer table (channels, stride, receptive field) against forward and
backward passes, its roles, its truncated forward pass, its classes and its weights path
(download, cache, offline message, --weights PATH), all offline and without real weights."""

from __future__ import annotations

import contextlib
import copy
import re
import urllib.error

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner

from dreamer.cli import main
from dreamer.errors import UnknownNameError, WeightsError
from dreamer.models import Network, cache_path, get_spec, list_models, load_model, ops
from dreamer.models.spec import ROLES

ZOO = ["googlenet", "inceptionv1", "inception-v3", "vgg16", "vgg19", "resnet50", "alexnet",
       "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
DOWNLOADED = ["googlenet", "inceptionv1", "inception-v3", "vgg16", "vgg19", "resnet50", "alexnet"]
# measuring a receptive field costs a backward pass over an input taller than it; these
# are checked up to this size (their deeper layers repeat the blocks checked below it)
RF_LIMIT = {"inception-v3": 400, "vgg19": 400, "efficientnet-lite1": 400, "efficientnet-lite2": 400}


@pytest.fixture(autouse=True)
def offline(monkeypatch) -> list[str]:
    """No network: every download fails as it does offline; the URLs tried are recorded."""
    tried: list[str] = []

    def fail(request, *args, **kwargs):
        tried.append(getattr(request, "full_url", str(request)))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", fail)
    return tried


def _net(empty_model, name: str) -> Network:
    return Network(empty_model(name), name=name, weights="zeros", spec=get_spec(name))


# --- the registry ---------------------------------------------------------------------------


def test_every_model_is_registered():
    assert list_models() == ZOO
    assert get_spec("Inception_V3").name == "inception-v3"  # case and '_' do not matter


def test_unknown_model_points_to_the_listing():
    with pytest.raises(UnknownNameError) as info:
        get_spec("vgg61")
    assert info.value.exit_code == 2
    assert "vgg16" in info.value.suggestions
    assert "dreamer models" in str(info.value)


@pytest.mark.parametrize("name", ZOO)
def test_spec_is_consistent(name):
    spec = get_spec(name)
    names = [info.name.lower() for info in spec.layers]
    aliases = [a.lower() for info in spec.layers for a in info.aliases]
    assert len(set(names + aliases)) == len(names) + len(aliases), "a name or alias is used twice"
    assert all(info.node in spec.stages for info in spec.layers)
    order = {node: i for i, node in enumerate(spec.stages)}
    assert [order[i.node] for i in spec.layers] == sorted(order[i.node] for i in spec.layers)
    assert spec.resolve(spec.default_layer).spatial
    assert spec.min_size >= 32 and spec.input_size >= 224
    assert len(spec.mean) == len(spec.std) == 3


# --- the layer table against the network ------------------------------------------------------


@pytest.mark.parametrize("name", ZOO)
def test_layer_table_matches_a_forward_pass(empty_model, name):
    """Channels as the network produces them; the stride as how much the map grows when the
    input grows (exact whatever the padding: inception-v3's convolutions are unpadded)."""
    spec = get_spec(name)
    net = _net(empty_model, name)
    nodes = [info.node for info in spec.layers]
    extractor = net.extractor(nodes)
    side = max(spec.min_size, 64)
    with torch.no_grad():
        small = extractor(torch.zeros(1, 3, side, side))
        tall = extractor(torch.zeros(1, 3, side + 64, side))
    assert set(small) == set(nodes)
    for info in spec.layers:
        a, b = small[info.node], tall[info.node]
        assert a.shape[1] == info.channels, f"{info.name}: table says {info.channels}, forward gives {a.shape[1]}"
        if info.spatial:
            assert a.dim() == 4 and b.shape[-2] - a.shape[-2] == 64 // info.stride, f"{info.name}: stride"
            assert b.shape[-1] == a.shape[-1]
        else:
            assert a.dim() == 2


@contextlib.contextmanager
def _average_pools(monkeypatch):
    """Max pooling sends the gradient to one input per window; for measuring what an output
    can see, pool by averaging over the same windows (padding with zeros, not -inf)."""
    pad = ops.same_pad

    def avg(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode)

    with monkeypatch.context() as m:
        m.setattr(F, "max_pool2d", avg)
        m.setattr(ops, "same_pad", lambda x, k, s, value=0.0: pad(x, k, s, 0.0))
        yield


def _all_positive(module: nn.Module) -> nn.Module:
    """A copy whose every unit averages its inputs: every path carries gradient, nothing saturates."""
    m = copy.deepcopy(module).eval()
    with torch.no_grad():
        for x in m.modules():
            if isinstance(x, nn.Conv2d):
                x.weight.fill_(1.0 / x.weight[0].numel())
                if x.bias is not None:
                    x.bias.zero_()
            elif isinstance(x, nn.BatchNorm2d):
                x.weight.fill_(1.0)
                x.bias.zero_()
                x.running_mean.zero_()
                x.running_var.fill_(1.0)
    return m


@pytest.mark.parametrize("name", ZOO)
def test_receptive_fields_match_a_backward_pass(empty_model, monkeypatch, name):
    """The input rows that reach the centre unit of each layer (its gradient's support) span
    exactly the table's receptive field."""
    spec = get_spec(name)
    net = Network(_all_positive(empty_model(name)), name=name, weights="t", spec=spec)
    limit = RF_LIMIT.get(name, 10**6)
    conv_then_relu = name.startswith(("vgg", "alexnet"))
    checked = 0
    for info in spec.layers:
        if not info.spatial or info.receptive_field > limit:
            continue
        if conv_then_relu and info.name.startswith("conv"):
            # the ReLU right after it has the same geometry (checked in the next test)
            continue
        extractor = net.extractor([info.node])
        extractor.normalize = nn.Identity()
        s = info.stride
        height = -(-(info.receptive_field + 2 * s) // s) * s
        x = torch.full((1, 3, height, spec.min_size), 1e-3, requires_grad=True)
        with _average_pools(monkeypatch):
            y = extractor(x)[info.node]
            y[0, :, y.shape[-2] // 2, y.shape[-1] // 2].sum().backward()
        rows = (x.grad[0].abs().sum((0, 2)) > 0).nonzero().flatten()
        assert int(rows.max() - rows.min() + 1) == info.receptive_field, info.name
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "alexnet"])
def test_conv_and_its_relu_share_their_geometry(name):
    spec = get_spec(name)
    for info in spec.layers:
        if info.name.startswith("conv"):
            relu = spec.resolve(info.name.replace("conv", "relu"))
            assert (relu.channels, relu.stride, relu.receptive_field) == (info.channels, info.stride, info.receptive_field)
            assert spec.stages.index(relu.node) == spec.stages.index(info.node) + 1


@pytest.mark.parametrize(
    ("name", "layer", "channels", "stride"),
    [
        ("vgg16", "conv4_3", 512, 8), ("vgg16", "relu4_3", 512, 8), ("vgg16", "pool4", 512, 16),
        ("vgg16", "conv1_1", 64, 1), ("vgg16", "fc8", 1000, None), ("vgg19", "conv5_4", 512, 16),
        ("resnet50", "layer3.5", 1024, 16), ("resnet50", "layer3", 1024, 16), ("resnet50", "layer3_5", 1024, 16),
        ("resnet50", "conv1", 64, 2), ("resnet50", "layer4", 2048, 32), ("resnet50", "layer1.0", 256, 4),
        ("inception-v3", "Mixed_5b", 256, 8), ("inception-v3", "mixed_7c", 2048, 32),
        ("alexnet", "conv5", 256, 16), ("alexnet", "pool5", 256, 32),
        ("inceptionv1", "mixed4a", 508, 16), ("inceptionv1", "mixed4b", 512, 16), ("inceptionv1", "mixed4d", 528, 16),
        ("inceptionv1", "mixed4e", 832, 16), ("inceptionv1", "mixed5a", 832, 32), ("inceptionv1", "mixed5b", 1024, 32),
        ("inceptionv1", "softmax2_pre_activation", 1008, None),
        ("efficientnet-lite0", "block3", 80, 16), ("efficientnet-lite0", "block3.2", 80, 16),
        ("efficientnet-lite0", "_blocks.7", 80, 16), ("efficientnet-lite0", "head", 1280, 32),
        ("efficientnet-lite1", "block5", 192, 32), ("efficientnet-lite2", "block5", 208, 32),
    ],
)
def test_names_people_know(name, layer, channels, stride):
    info = get_spec(name).resolve(layer)
    assert (info.channels, info.stride) == (channels, stride)


# --- roles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ZOO)
def test_every_role_resolves_and_roles_go_deeper(name):
    spec = get_spec(name)
    roles = spec.role_layers()
    assert set(roles) == set(ROLES)
    position = {node: i for i, node in enumerate(spec.stages)}
    depth = [position[spec.resolve("@" + r).node] for r in ("shallow", "lower", "middle", "upper", "deep")]
    assert depth == sorted(depth)
    for role in ("shallow", "lower", "middle", "upper", "deep"):
        assert spec.resolve("@" + role).spatial
    assert spec.resolve("@default") == spec.resolve(spec.default_layer)
    assert spec.resolve("@LOGITS").name == "logits"


def test_unknown_role_suggests_roles():
    with pytest.raises(UnknownNameError) as info:
        get_spec("vgg16").resolve("@deeep")
    assert "@deep" in info.value.suggestions
    assert "dreamer layers --model vgg16" in str(info.value)


def test_custom_module_roles():
    net = Network.from_module(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), roles={"deep": "1"})
    assert net.resolve("@deep").node == "1"
    with pytest.raises(UnknownNameError):
        net.resolve("@middle")


# --- the truncated forward pass --------------------------------------------------------------


@pytest.mark.parametrize("name", ZOO)
def test_forward_stops_at_the_deepest_requested_layer(empty_model, name):
    spec = get_spec(name)
    net = _net(empty_model, name)
    shallow, deep = spec.resolve("@shallow"), spec.resolve("@middle")
    after = spec.stages[spec.stages.index(deep.node) + 1]
    ran: list = []
    later = net.module.get_submodule(after) if after != "flatten" else None
    handles = [m.register_forward_hook(lambda *_: ran.append(1)) for m in (later, net.module.get_submodule(spec.resolve("logits").node)) if m is not None]
    try:
        extractor = net.extractor([deep.node, shallow.node])
        with torch.no_grad():
            acts = extractor(torch.zeros(1, 3, spec.min_size + 32, spec.min_size + 32))
    finally:
        for h in handles:
            h.remove()
    assert set(acts) == {deep.node, shallow.node}
    assert ran == [], f"{after} ran after {deep.name}"
    assert len(extractor.stages) == spec.stages.index(deep.node) + 1


@pytest.mark.parametrize("name", ["vgg16", "alexnet"])
def test_a_convolution_read_with_a_deeper_layer_is_not_overwritten_by_its_relu(empty_model, name):
    """torchvision's in-place ReLUs would turn the conv's output into the relu's."""
    spec = get_spec(name)
    module = copy.deepcopy(empty_model(name))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.features.parameters():  # the classifier never runs here
            p.normal_(0, 0.1)
    net = Network(module, name=name, weights="t", spec=spec)
    conv, deep = spec.resolve("conv2_1" if name == "vgg16" else "conv2"), spec.resolve("@deep")
    with torch.no_grad():
        acts = net.extractor([conv.node, deep.node])(torch.rand(1, 3, 64, 64))
    assert (acts[conv.node] < 0).any()


# --- normalisation and classes -----------------------------------------------------------------


def test_inception_v3_normalisation_is_torchvisions_transform_input():
    from torchvision.models import Inception3

    from dreamer.models.spec import IMAGENET_MEAN, IMAGENET_STD

    x = torch.rand(1, 3, 8, 8)
    spec = get_spec("inception-v3")
    ours = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    imagenet = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.device("meta"):
        tv = Inception3(transform_input=True, init_weights=False, aux_logits=False)
    torch.testing.assert_close(tv._transform_input(imagenet), ours)


def test_inceptionv1_takes_lucids_input_range():
    spec = get_spec("inceptionv1")
    low = (0 - spec.mean[0]) / spec.std[0]
    high = (1 - spec.mean[0]) / spec.std[0]
    assert (round(low, 4), round(high, 4)) == (-117.0, 138.0)


@pytest.mark.parametrize("name", ZOO)
def test_classes(name):
    from torchvision.models import ResNet50_Weights

    spec = get_spec(name)
    if name == "inceptionv1":
        assert len(spec.categories) == 1008 and spec.categories[0] == "class 0"
        assert "index" in spec.categories_note
    else:
        assert spec.categories == tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert spec.resolve("logits").channels == len(spec.categories)


# --- weights ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOWNLOADED)
def test_offline_download_failure_is_one_line_with_a_way_out(name, offline, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    spec = get_spec(name)
    with pytest.raises(WeightsError) as info:
        load_model(name)
    err = info.value
    assert err.exit_code == 1
    assert len(err.message.splitlines()) == 1
    assert spec.weights_url in err.message and str(cache_path(spec.weights_url)) in err.message
    assert "--weights PATH" in err.hint
    assert offline == [spec.weights_url]
    assert not cache_path(spec.weights_url).exists()


def test_offline_cli_says_it_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    result = CliRunner().invoke(main, ["run", "noise:64x64", "--model", "resnet50", "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and get_spec("resnet50").weights_url in errors[0]
    assert not (tmp_path / "o.png").exists()


def test_torchvision_model_loads_from_the_hub_cache(tmp_path, monkeypatch, offline):
    """A zoo model's pretrained weights are read from the torch hub cache once there."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    spec = get_spec("resnet50")
    state = load_model("resnet50", weights="random:5").module.state_dict()
    path = cache_path(spec.weights_url)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    network = load_model("resnet50")
    assert network.weights == "pretrained" and offline == []
    key = "layer3.5.conv2.weight"
    assert torch.equal(network.module.state_dict()[key], state[key])


def test_torchvision_model_file_with_wrong_keys_is_refused(tmp_path):
    state = {"conv1.weight": torch.zeros(64, 3, 7, 7)}
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        load_model("resnet50", weights=path)
    assert "missing" in info.value.message and str(path) in info.value.message


# --- inceptionv1: the published port's names --------------------------------------------------

# a few keys and shapes of the published inception5h.pth, as Lucent's InceptionV1 names them
PUBLISHED = {
    "conv2d0_pre_relu_conv.weight": (64, 3, 7, 7),
    "conv2d0_pre_relu_conv.bias": (64,),
    "conv2d1_pre_relu_conv.weight": (64, 64, 1, 1),
    "conv2d2_pre_relu_conv.weight": (192, 64, 3, 3),
    "mixed3a_1x1_pre_relu_conv.weight": (64, 192, 1, 1),
    "mixed3b_5x5_pre_relu_conv.weight": (96, 32, 5, 5),
    "mixed4a_3x3_bottleneck_pre_relu_conv.weight": (96, 480, 1, 1),
    "mixed4a_3x3_pre_relu_conv.weight": (204, 96, 3, 3),
    "mixed4a_5x5_pre_relu_conv.bias": (48,),
    "mixed4b_pool_reduce_pre_relu_conv.weight": (64, 508, 1, 1),
    "mixed4e_pool_reduce_pre_relu_conv.weight": (128, 528, 1, 1),
    "mixed5b_1x1_pre_relu_conv.weight": (384, 832, 1, 1),
    "mixed5b_5x5_pre_relu_conv.weight": (128, 48, 5, 5),
    "softmax2_pre_activation_matmul.weight": (1008, 1024),
    "softmax2_pre_activation_matmul.bias": (1008,),
}
_PUBLISHED_NAME = re.compile(
    r"(conv2d[0-2]|mixed(3[ab]|4[a-e]|5[ab])_(1x1|3x3_bottleneck|3x3|5x5_bottleneck|5x5|pool_reduce))"
    r"_pre_relu_conv\.(weight|bias)|softmax2_pre_activation_matmul\.(weight|bias)"
)


@pytest.fixture(scope="module")
def published(empty_model):
    """A state dict in the published port's names, made from our module (random values)."""
    from dreamer.models.inceptionv1 import published_names

    torch.manual_seed(1)
    state = {k: torch.randn(v.shape) for k, v in empty_model("inceptionv1").state_dict().items()}
    return published_names(state)


def test_inceptionv1_keys_are_the_published_ones(published):
    assert len(published) == 3 * 2 + 9 * 6 * 2 + 2
    assert all(_PUBLISHED_NAME.fullmatch(k) for k in published), [k for k in published if not _PUBLISHED_NAME.fullmatch(k)]
    for key, shape in PUBLISHED.items():
        assert tuple(published[key].shape) == shape, key


def test_inceptionv1_pretrained_from_the_hub_cache(published, tmp_path, monkeypatch, offline):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    spec = get_spec("inceptionv1")
    assert spec.weights_url.endswith("/inception5h.pth")
    path = cache_path(spec.weights_url)
    path.parent.mkdir(parents=True)
    torch.save(published, path)
    network = load_model("inceptionv1")
    assert offline == []
    loaded = network.module.state_dict()
    assert torch.equal(loaded["mixed4a.conv_3x3.weight"], published["mixed4a_3x3_pre_relu_conv.weight"])
    assert torch.equal(loaded["conv2d0.conv.bias"], published["conv2d0_pre_relu_conv.bias"])
    assert torch.equal(loaded["softmax2_pre_activation_matmul.weight"], published["softmax2_pre_activation_matmul.weight"])


def test_inceptionv1_weights_path_through_the_cli(published, tmp_path):
    path = tmp_path / "inception5h.pth"
    torch.save(published, path)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, [
        "run", "noise:48x48", "--model", "inceptionv1", "--weights", str(path), "--layer", "mixed3a:7",
        "--octaves", "1", "--steps", "1", "-q", "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_inceptionv1_published_file_with_a_missing_block_is_refused(published, tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({k: v for k, v in published.items() if not k.startswith("mixed5b")}, path)
    with pytest.raises(WeightsError) as info:
        load_model("inceptionv1", weights=path)
    assert "missing 12 keys" in info.value.message and "mixed5b." in info.value.message
