"""The gradient backend: BatchNorm folding, precision, the prepared network (what it holds, when it
prepares again), CUDA graphs, agreement of the fast path with the exact one."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from dreamer.backend import PreparedNetwork, graphs, prepare, resolve_precision
from dreamer.backend.folding import conv_bn_pairs, fold_batchnorm
from dreamer.backend.forward import fast_forward
from dreamer.backend.precision import is_oom
from dreamer.config import ClassTarget, DreamConfig
from dreamer.errors import DreamerError
from dreamer.loops.deepdream import dream
from dreamer.loops.render import render
from dreamer.models import Network
from dreamer.objectives import build_objective, layer_l2


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def _objective(network, *specs: str):
    from dreamer.config import parse_layer_target

    return build_objective(network, [parse_layer_target(s) for s in specs])


def _reference(network, objective, x):
    """The gradient written out by hand: the network's own modules, plain autograd."""
    x = x.detach().requires_grad_(True)
    score = objective(network.extractor(objective.nodes)(x))
    (grad,) = torch.autograd.grad(score.sum(), x)
    return grad, score.detach()


def _copy(network) -> Network:
    return Network(copy.deepcopy(network.module), name="googlenet", weights="random:0", spec=network.spec)


# -- folding ----------------------------------------------------------------------------------


def test_folded_network_gives_the_same_activations(network, image):
    nodes = ["conv1", "inception3a", "inception4c"]
    original = network.extractor(nodes)
    before = {k: v.clone() for k, v in network.module.state_dict().items()}
    folded, count = fold_batchnorm(original)
    assert count == 3 + 5 * 6  # conv1-3 and six BasicConv2d in each of inception3a to 4c
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        want = original(image)
        got = folded(image)
    for node in nodes:
        assert _rel(got[node], want[node]) < 1e-4, node
    # the original network is untouched: its BatchNorms and weights are still there
    assert isinstance(network.module.conv1.bn, nn.BatchNorm2d)
    after = network.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_googlenet_folds_every_conv_bn_pair_up_to_the_layer(network):
    # conv1-3 and six BasicConv2d in each of inception3a, 3b, 4a, 4b, 4c
    assert len(conv_bn_pairs(network.extractor(["inception4c"]))) == 3 + 5 * 6


class _Tricky(nn.Module):
    """A BatchNorm before a conv (must not fold), a conv output read twice (must not fold)
    and one ordinary conv -> bn pair (folds)."""

    def __init__(self) -> None:
        super().__init__()
        self.pre_bn = nn.BatchNorm2d(3)
        self.conv_a = nn.Conv2d(3, 3, 3, padding=1)
        self.conv_b = nn.Conv2d(3, 3, 3, padding=1)
        self.bn_b = nn.BatchNorm2d(3)
        self.conv_c = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn_c = nn.BatchNorm2d(4)

    def forward(self, x):
        x = self.conv_a(self.pre_bn(x))
        y = self.conv_b(x)
        x = self.bn_b(y) + y  # the raw conv output is needed too
        return self.bn_c(self.conv_c(x))


def _randomise_bn(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


def test_only_a_bn_applied_directly_and_only_to_a_conv_is_folded():
    module = _Tricky().eval()
    _randomise_bn(module)
    assert conv_bn_pairs(module) == [("conv_c", "bn_c")]
    folded, count = fold_batchnorm(module)
    assert count == 1
    x = torch.rand(2, 3, 9, 11)
    with torch.no_grad():
        assert _rel(folded(x), module(x)) < 1e-5
    assert isinstance(folded.bn_c, nn.Identity) and isinstance(folded.bn_b, nn.BatchNorm2d)
    assert folded.conv_c.bias is not None and module.conv_c.bias is None  # the original is unchanged


class _ConvThenBn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.bn = nn.BatchNorm2d(5)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


def test_a_conv_whose_raw_output_is_read_is_not_folded():
    # a custom network dreamed at a conv followed by a BatchNorm: the tap must stay the raw conv
    module = nn.Sequential(_ConvThenBn(), nn.Conv2d(5, 4, 3)).eval()
    _randomise_bn(module)
    net = Network.from_module(module)
    forward = fast_forward(net, ["0.conv"], "fp32")
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        want = net.extractor(["0.conv"])(x)["0.conv"]
        got = forward(x)["0.conv"]
    assert torch.allclose(got, want, atol=1e-5)
    # while a tap after the BatchNorm lets it fold
    forward = fast_forward(net, ["1"], "fp32")
    assert forward.folded == 1
    with torch.no_grad():
        assert _rel(forward(x)["1"], net.extractor(["1"])(x)["1"]) < 1e-5


# -- precision ---------------------------------------------------------------------------------


def test_auto_precision_is_fp32_on_cpu_and_bf16_on_capable_cuda(monkeypatch):
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    with pytest.raises(ValueError):
        resolve_precision("fp8", torch.device("cpu"))


def test_fp32_fast_gradient_matches_the_reference(network, image):
    objective = _objective(network, "mixed4c", "mixed3a:5,9=0.5")
    want_g, want_s = _reference(network, objective, image)
    prepared = PreparedNetwork(network)
    got_g, got_s = prepared.gradient(image, objective, precision="auto")
    assert prepared.last["path"] == "fast" and prepared.last["precision"] == "fp32"
    assert prepared.last["folded_batchnorms"] == 3 + 5 * 6 and prepared.last["channels_last"]
    assert got_g.dtype == torch.float32 and got_g.shape == image.shape
    assert _rel(got_g, want_g) < 1e-4
    assert torch.allclose(got_s, want_s, rtol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_objective_after_one_step_within_one_percent(network, image, precision):
    config = DreamConfig(layers=("mixed4c",), octaves=1, steps=1, jitter=0)
    objective = _objective(network, "mixed4c")
    def reference(x):
        return _reference(network, objective, x)

    exact = dream(image, network, config.replace(precision="fp32"))
    fast_out = dream(image, network, config.replace(precision=precision))
    assert fast_out.dtype == torch.float32  # the image and its update stay fp32
    before = reference(image)[1]
    after_exact = reference(exact)[1]
    after_fast = reference(fast_out)[1]
    assert float(after_exact) > float(before)  # the step did something measurable
    assert abs(float(after_fast) / float(after_exact) - 1) < 0.01
    # and the score the fast path reports for the same input agrees too
    _, score = PreparedNetwork(network).gradient(image, objective, precision=precision)
    assert abs(float(score) / float(before) - 1) < 0.01


def test_fp16_gradients_do_not_underflow(network, image):
    # without loss scaling most of this gradient is below fp16's range and comes back zero
    objective = _objective(network, "mixed4c")
    want, _ = _reference(network, objective, image)
    got, _ = PreparedNetwork(network).gradient(image, objective, precision="fp16")
    assert torch.isfinite(got).all()
    assert (got != 0).float().mean() > 0.95
    cosine = torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0)
    assert cosine > 0.99


def test_fp32_stays_the_exact_reference_path(network, image):
    objective = _objective(network, "mixed4c", "mixed3a:5,9=0.5")
    prepared = PreparedNetwork(network)
    got_g, got_s = prepared.gradient(image, objective, precision="fp32")
    want_g, want_s = _reference(network, objective, image)
    assert prepared.last["path"] == "exact" and prepared.last["folded_batchnorms"] == 0
    assert torch.equal(got_g, want_g) and torch.equal(got_s, want_s)  # bit for bit


def test_default_precision_is_deterministic(network, image):
    config = DreamConfig(layers=("mixed4c",), octaves=2, steps=1, jitter=4, seed=7)
    assert torch.equal(dream(image, network, config), dream(image, network, config))


# -- the prepared network ----------------------------------------------------------------------


def test_what_is_prepared_lives_in_the_object(network, image):
    # no state shared between prepared networks: each holds its own copies (no hidden caches)
    objective = _objective(network, "mixed3a")
    a, b = PreparedNetwork(network), PreparedNetwork(network)
    a.gradient(image, objective)
    forward = next(iter(a._forwards.values()))
    a.gradient(image, objective)
    assert list(a._forwards.values()) == [forward]  # prepared once, reused
    assert b._forwards == {}
    b.gradient(image, objective)
    assert next(iter(b._forwards.values())) is not forward
    assert prepare(a) is a and isinstance(prepare(network), PreparedNetwork)
    with pytest.raises(TypeError):
        PreparedNetwork(a)


def test_rebinding_weights_is_noticed(network, image):
    # `param.data = ...` changes no version counter: a cache that watched versions only kept
    # serving the old folded copy (activations ~50% off). The prepared network checks storage
    # addresses too, at the start of every run.
    net = _copy(network)
    config = DreamConfig(layers=("mixed3a",), octaves=1, steps=2, jitter=0)
    prepared = PreparedNetwork(net)
    before = dream(image, prepared, config)
    weight = net.module.conv1.conv.weight
    weight.data = weight.data * torch.linspace(0.2, 3.0, weight.shape[0]).view(-1, 1, 1, 1)
    held = dream(image, prepared, config)
    fresh = dream(image, PreparedNetwork(net), config)
    assert torch.equal(held, fresh)
    assert float((held - before).abs().max()) > 1e-3
    # also straight through the loop without a held object, and for a render
    assert torch.equal(dream(image, net, config), fresh)
    render_config = DreamConfig(layers=("mixed3a",), param="fft", steps=2)
    assert torch.equal(render(image, prepared, render_config), render(image, PreparedNetwork(net), render_config))


def test_refresh_sees_in_place_and_rebound_changes_only(network, image):
    net = _copy(network)
    objective = layer_l2("inception3a")
    prepared = PreparedNetwork(net)
    prepared.gradient(image, objective)
    assert not prepared.refresh() and prepared._forwards
    with torch.no_grad():
        net.module.conv1.conv.weight.mul_(2.0)
    assert prepared.refresh() and not prepared._forwards
    assert not prepared.refresh()  # nothing prepared, nothing stale
    prepared.gradient(image, objective)
    net.module.conv2.conv.weight.data = net.module.conv2.conv.weight.data.clone()
    assert prepared.refresh() and not prepared._forwards
    with torch.no_grad():
        want = net.extractor(objective.nodes)(image)["inception3a"]
    got_g, got_s = prepared.gradient(image, objective)
    want_g, want_s = _reference(net, objective, image)
    assert _rel(got_g, want_g) < 1e-4 and torch.allclose(got_s, want.pow(2).mean((1, 2, 3)), rtol=1e-4)


def test_one_module_under_two_normalisations_is_two_networks(image):
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval()
    _randomise_bn(module)
    a = Network.from_module(module, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    b = Network.from_module(module, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    objective = layer_l2("2")
    for net in (a, b, a):
        got, _ = PreparedNetwork(net).gradient(image, objective, precision="auto")
        want, _ = _reference(net, objective, image)
        assert _rel(got, want) < 1e-4


# -- odds and ends -----------------------------------------------------------------------------


def test_out_of_memory_is_recognised():
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 1 TB"))
    try:
        try:
            raise torch.OutOfMemoryError("oom")
        except torch.OutOfMemoryError as exc:
            raise RuntimeError("capture failed") from exc
    except RuntimeError as chained:
        assert is_oom(chained)
    assert not is_oom(ValueError("out of memory"))
    assert not is_oom(RuntimeError("shape mismatch"))


def _whole_fn(network, objective):
    forward = fast_forward(network, objective.nodes, "fp32")

    def fn(x):
        x = x.detach().requires_grad_(True)
        score = objective(forward(x))
        (grad,) = torch.autograd.grad(score.sum(), x)
        return grad, score.detach()

    return fn


def test_graphed_function_passes_through_off_cuda(network, image):
    inner = _whole_fn(network, _objective(network, "mixed4c"))
    graphed = graphs.GraphedFunction(inner)
    g, s = graphed(image)
    want_g, want_s = inner(image)
    assert torch.equal(g, want_g) and torch.equal(s, want_s)
    assert graphed.graphs == 0 and graphed.failure is None


class _StandInGraph:
    """Plays torch.cuda.CUDAGraph on the CPU: replay re-runs the captured call and writes its
    results into the same output tensors, as replaying a real graph does."""

    def __init__(self, fn, static_in, outputs) -> None:
        self.fn, self.static_in, self.outputs = fn, static_in, outputs

    def replay(self) -> None:
        for out, new in zip(self.outputs, self.fn(self.static_in)):
            out.copy_(new)


def test_graphed_function_bookkeeping_with_a_stand_in_graph(network, image, monkeypatch):
    captured = []

    def capture(fn, static_in, pool, warmup):
        outputs = fn(static_in)
        captured.append(tuple(static_in.shape))
        return _StandInGraph(fn, static_in, outputs), outputs

    monkeypatch.setattr(graphs, "capture_graph", capture)
    monkeypatch.setattr(graphs, "new_pool", object)
    inner = _whole_fn(network, _objective(network, "mixed3a"))
    graphed = graphs.GraphedFunction(inner, max_graphs=2)
    graphed.device_type = "cpu"
    a, b = image, torch.roll(image, 9, dims=3)
    small = torch.nn.functional.interpolate(image, size=(48, 64), mode="bilinear")
    ga, sa = graphed(a)
    gb, sb = graphed(b)  # same shape: a replay with new contents
    assert captured == [(1, 3, 64, 80)]
    assert torch.equal(ga, inner(a)[0]) and torch.equal(gb, inner(b)[0])  # results are copies:
    assert not torch.equal(ga, gb)  # the replay for b did not overwrite a's result
    graphed(small)
    graphed(a)
    graphed(torch.rand(1, 3, 40, 40))  # a third shape evicts the least recently used (small)
    assert captured == [(1, 3, 64, 80), (1, 3, 48, 64), (1, 3, 40, 40)] and graphed.graphs == 2
    graphed(small)
    assert len(captured) == 4 and graphed.failure is None

    def refuse(*args):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphs, "capture_graph", refuse)
    fresh = graphs.GraphedFunction(inner)
    fresh.device_type = "cpu"
    got, _ = fresh(a)  # capture fails: eager, correct, and graphs stay off
    assert torch.equal(got, inner(a)[0]) and isinstance(fresh.failure, RuntimeError)

    def starve(*args):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(graphs, "capture_graph", starve)
    fresh = graphs.GraphedFunction(inner)
    fresh.device_type = "cpu"
    with pytest.raises(torch.OutOfMemoryError):  # for tiling to catch, not swallowed
        fresh(a)
    assert fresh.failure is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_replay_the_eager_result(network, image):
    net = _copy(network).to("cuda")
    objective = _objective(net, "mixed4c")
    x = image.cuda()
    for precision in ("auto", "bf16"):
        prepared = PreparedNetwork(net)
        for shift in (0, 3):  # replays with new contents of the same shape
            xs = torch.roll(x, shift, dims=3)
            want_g, want_s = _reference(net, objective, xs)
            g, s = prepared.gradient(xs, objective, precision=precision)
            assert prepared.last.get("cuda_graphs_off") is None
            assert _rel(g, want_g) < (1e-3 if precision == "fp32" else 3e-2)
            assert torch.allclose(s, want_s, rtol=2e-2)
        assert prepared.gradient(x, objective, precision=precision) and prepared.last["cuda_graphs"] == 1
    # an objective that copies from the host during capture falls back to eager, correctly
    channels = _objective(net, "mixed4c:1,2")
    prepared = PreparedNetwork(net)
    g, _ = prepared.gradient(x, channels)
    want, _ = _reference(net, channels, x)
    assert _rel(g, want) < 1e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_render_and_dream_use_graphs_through_transforms(network, image):
    # transforms run outside the backend, so graphs replay even with standard transforms
    net = _copy(network).to("cuda")
    prepared = PreparedNetwork(net)
    dream(image.cuda(), prepared, DreamConfig(layers=("mixed3a",), octaves=1, steps=3, transforms="standard"))
    assert prepared.last["path"] == "fast" and prepared.last.get("cuda_graphs") == 1
    out = render(image.cuda(), prepared, DreamConfig(layers=(), classes=("banana",), param="fft", transforms="standard", steps=3))
    assert prepared.last.get("cuda_graphs") == 1 and out.device.type == "cuda"


def test_precision_choices_match_the_config():
    from dreamer.config import PRECISIONS

    for p in PRECISIONS:
        assert resolve_precision(p, torch.device("cpu")) in ("fp32", "bf16", "fp16")


def test_fp16_class_objective_does_not_overflow(network):
    # a class logit is not an average: scaling the loss by the pixel count (here 264*264 = 69696,
    # above fp16's maximum 65504) made this gradient inf/NaN; the loss scale must not grow with size
    image = torch.rand(1, 3, 264, 264, generator=torch.Generator().manual_seed(5))
    objective = build_objective(network, (), (ClassTarget("goldfish"),))
    got, score = PreparedNetwork(network).gradient(image, objective, precision="fp16")
    assert torch.isfinite(got).all() and torch.isfinite(score).all()
    assert got.abs().max() > 0
