"""The fast path: BatchNorm folding, precision, the prepared-network cache, agreement with fp32."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from dreamer.backend import fast
from dreamer.config import ClassTarget, DreamConfig
from dreamer.loops.deepdream import dream
from dreamer.backend.gradients import EagerGradient, make_gradient_fn
from dreamer.models import Network
from dreamer.objectives import build_objective, layer_l2


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def _objective(network, *specs: str):
    from dreamer.config import parse_layer_target

    return build_objective(network, [parse_layer_target(s) for s in specs])


# -- folding ----------------------------------------------------------------------------------


def test_folded_network_gives_the_same_activations(network, image):
    nodes = ["conv1", "inception3a", "inception4c"]
    original = network.extractor(nodes)
    before = {k: v.clone() for k, v in network.module.state_dict().items()}
    folded = fast.fold_batchnorm(original)
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
    assert len(fast.conv_bn_pairs(network.extractor(["inception4c"]))) == 3 + 5 * 6


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
    assert fast.conv_bn_pairs(module) == [("conv_c", "bn_c")]
    folded = fast.fold_batchnorm(module)
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
    forward = fast.prepare_forward(net, ["0.conv"], "fp32")
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        want = net.extractor(["0.conv"])(x)["0.conv"]
        got = forward(x)["0.conv"]
    assert torch.allclose(got, want, atol=1e-5)
    # while a tap after the BatchNorm lets it fold
    forward = fast.prepare_forward(net, ["1"], "fp32")
    assert forward.folded == 1
    with torch.no_grad():
        assert _rel(forward(x)["1"], net.extractor(["1"])(x)["1"]) < 1e-5


# -- precision ---------------------------------------------------------------------------------


def test_auto_precision_is_fp32_on_cpu_and_bf16_on_capable_cuda(monkeypatch):
    assert fast.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert fast.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert fast.resolve_precision("fp32", torch.device("cuda")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert fast.resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert fast.resolve_precision("auto", torch.device("cuda")) == "fp32"


def test_fp32_fast_gradient_matches_the_reference(network, image):
    objective = _objective(network, "mixed4c", "mixed3a:5,9=0.5")
    want_g, want_s = EagerGradient(network.extractor(objective.nodes), objective)(image)
    got_g, got_s = make_gradient_fn(network, objective, precision="auto")(image)
    assert got_g.dtype == torch.float32 and got_g.shape == image.shape
    assert _rel(got_g, want_g) < 1e-4
    assert torch.allclose(got_s, want_s, rtol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_objective_after_one_step_within_one_percent(network, image, precision):
    config = DreamConfig(layers=("mixed4c",), octaves=1, steps=1, jitter=0)
    objective = _objective(network, "mixed4c")
    reference = EagerGradient(network.extractor(objective.nodes), objective)
    exact = dream(image, network, config.replace(precision="fp32"))
    fast_out = dream(image, network, config.replace(precision=precision))
    assert fast_out.dtype == torch.float32  # the image and its update stay fp32
    before = reference(image)[1]
    after_exact = reference(exact)[1]
    after_fast = reference(fast_out)[1]
    assert float(after_exact) > float(before)  # the step did something measurable
    assert abs(float(after_fast) / float(after_exact) - 1) < 0.01
    # and the score the fast path reports for the same input agrees too
    _, score = make_gradient_fn(network, objective, precision=precision)(image)
    assert abs(float(score) / float(before) - 1) < 0.01


def test_fp16_gradients_do_not_underflow(network, image):
    # without loss scaling most of this gradient is below fp16's range and comes back zero
    objective = _objective(network, "mixed4c")
    want, _ = EagerGradient(network.extractor(objective.nodes), objective)(image)
    got, _ = make_gradient_fn(network, objective, precision="fp16")(image)
    assert torch.isfinite(got).all()
    assert (got != 0).float().mean() > 0.95
    cosine = torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0)
    assert cosine > 0.99


def test_fp32_stays_the_exact_reference_path(network, image):
    config = DreamConfig(layers=("mixed4c",), octaves=2, steps=1, jitter=4, precision="fp32", seed=3)
    objective = _objective(network, "mixed4c")
    plain = EagerGradient(network.extractor(objective.nodes), objective)
    want = dream(image, network, config, gradient_fn=plain)
    assert torch.equal(dream(image, network, config), want)


def test_default_precision_is_deterministic(network, image):
    config = DreamConfig(layers=("mixed4c",), octaves=2, steps=1, jitter=4, seed=7)
    assert torch.equal(dream(image, network, config), dream(image, network, config))


# -- caching -----------------------------------------------------------------------------------


def test_objective_key_tells_objectives_apart(network):
    a = _objective(network, "mixed4c:1,2=0.5", "mixed3a")
    assert fast.objective_key(a) == fast.objective_key(_objective(network, "mixed4c:1,2=0.5", "mixed3a"))
    for other in (
        _objective(network, "mixed4c:1,3=0.5", "mixed3a"),
        _objective(network, "mixed4c:1,2=0.25", "mixed3a"),
        _objective(network, "mixed4c:1,2=0.5", "mixed3b"),
        _objective(network, "mixed4c:1,2=0.5"),
    ):
        assert fast.objective_key(other) != fast.objective_key(a)
    # two different functions with the same name and nodes are never confused
    from dreamer.objectives import Objective

    f1 = Objective(lambda acts: acts["inception4c"].mean((1, 2, 3)), ["inception4c"], "custom")
    f2 = Objective(lambda acts: acts["inception4c"].amax((1, 2, 3)), ["inception4c"], "custom")
    assert fast.objective_key(f1) != fast.objective_key(f2)


def test_gradient_functions_are_reused_per_network_and_objective(network):
    first = make_gradient_fn(network, _objective(network, "mixed4c"), precision="auto")
    again = make_gradient_fn(network, _objective(network, "mixed4c"), precision="auto")
    other = make_gradient_fn(network, _objective(network, "mixed4c:3"), precision="auto")
    assert again is first and other is not first
    assert make_gradient_fn(network, _objective(network, "mixed4c"), precision="auto", tv_weight=0.1) is not first


def test_cache_notices_weights_changed_in_place(network, image):
    net = Network(copy.deepcopy(network.module), name="googlenet", weights="random:0", spec=network.spec)
    objective = layer_l2("inception3a")
    before = fast.prepare_forward(net, objective.nodes, "fp32")
    with torch.no_grad():
        net.module.conv1.conv.weight.mul_(2.0)
    after = fast.prepare_forward(net, objective.nodes, "fp32")
    assert after is not before
    with torch.no_grad():
        want = net.extractor(objective.nodes)(image)["inception3a"]
        assert _rel(after(image)["inception3a"], want) < 1e-4
        assert _rel(before(image)["inception3a"], want) > 1e-3


def test_one_module_under_two_normalisations_is_two_networks(image):
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval()
    _randomise_bn(module)
    a = Network.from_module(module, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    b = Network.from_module(module, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    objective = layer_l2("2")
    for net in (a, b, a):
        got, _ = make_gradient_fn(net, objective, precision="auto")(image)
        want, _ = EagerGradient(net.extractor(objective.nodes), objective)(image)
        assert _rel(got, want) < 1e-4


# -- odds and ends -----------------------------------------------------------------------------


def test_out_of_memory_is_recognised():
    assert fast.is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert fast.is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 1 TB"))
    try:
        try:
            raise torch.OutOfMemoryError("oom")
        except torch.OutOfMemoryError as exc:
            raise RuntimeError("capture failed") from exc
    except RuntimeError as chained:
        assert fast.is_oom(chained)
    assert not fast.is_oom(ValueError("out of memory"))
    assert not fast.is_oom(RuntimeError("shape mismatch"))


def test_graphed_gradient_passes_through_off_cuda(network, image):
    objective = _objective(network, "mixed4c")
    inner = fast.FastGradient(fast.prepare_forward(network, objective.nodes, "fp32"), objective)
    graphed = fast.GraphedGradient(inner)
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


def test_graphed_gradient_bookkeeping_with_a_stand_in_graph(network, image, monkeypatch):
    captured = []

    def capture(fn, static_in, pool, warmup):
        outputs = fn(static_in)
        captured.append(tuple(static_in.shape))
        return _StandInGraph(fn, static_in, outputs), outputs

    monkeypatch.setattr(fast, "_capture_graph", capture)
    monkeypatch.setattr(fast, "_new_pool", object)
    objective = _objective(network, "mixed3a")
    inner = fast.FastGradient(fast.prepare_forward(network, objective.nodes, "fp32"), objective)
    graphed = fast.GraphedGradient(inner, max_graphs=2)
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

    monkeypatch.setattr(fast, "_capture_graph", refuse)
    fresh = fast.GraphedGradient(inner)
    fresh.device_type = "cpu"
    got, _ = fresh(a)  # capture fails: eager, correct, and graphs stay off
    assert torch.equal(got, inner(a)[0]) and isinstance(fresh.failure, RuntimeError)

    def starve(*args):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(fast, "_capture_graph", starve)
    fresh = fast.GraphedGradient(inner)
    fresh.device_type = "cpu"
    with pytest.raises(torch.OutOfMemoryError):  # for tiling to catch, not swallowed
        fresh(a)
    assert fresh.failure is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_replay_the_eager_result(network, image):
    net = Network(copy.deepcopy(network.module), name="googlenet", weights="random:0", spec=network.spec).to("cuda")
    objective = _objective(net, "mixed4c")
    x = image.cuda()
    for precision in ("fp32", "bf16"):
        forward = fast.prepare_forward(net, objective.nodes, precision)
        inner = fast.FastGradient(forward, objective)
        graphed = fast.GraphedGradient(inner)
        for shift in (0, 3):  # replays with new contents of the same shape
            xs = torch.roll(x, shift, dims=3)
            want_g, want_s = inner(xs)
            g, s = graphed(xs)
            assert graphed.failure is None and graphed.graphs == 1
            assert _rel(g, want_g) < (1e-4 if precision == "fp32" else 2e-2)
            assert torch.allclose(s, want_s, rtol=1e-2)
    # an objective that copies from the host during capture falls back to eager, correctly
    channels = _objective(net, "mixed4c:1,2")
    graphed = fast.GraphedGradient(fast.FastGradient(fast.prepare_forward(net, channels.nodes, "fp32"), channels))
    g, _ = graphed(x)
    want, _ = EagerGradient(net.extractor(channels.nodes), channels)(x)
    assert _rel(g, want) < 1e-3


def test_precision_choices_match_the_config():
    from dreamer.config import PRECISIONS

    for p in PRECISIONS:
        assert fast.resolve_precision(p, torch.device("cpu")) in ("fp32", "bf16", "fp16")


def test_fp16_class_objective_does_not_overflow(network):
    # a class logit is not an average: scaling the loss by the pixel count (here 264*264 = 69696,
    # above fp16's maximum 65504) made this gradient inf/NaN; the loss scale must not grow with size
    image = torch.rand(1, 3, 264, 264, generator=torch.Generator().manual_seed(5))
    objective = build_objective(network, (), (ClassTarget("goldfish"),))
    got, score = make_gradient_fn(network, objective, precision="fp16")(image)
    assert torch.isfinite(got).all() and torch.isfinite(score).all()
    assert got.abs().max() > 0
