"""Tiled gradients: exact agreement with the untiled ones, layout, budgets, out-of-memory retry."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dreamer.backend import PreparedNetwork, tiling
from dreamer.backend.forward import Forward, exact_forward
from dreamer.config import DreamConfig, parse_layer_target
from dreamer.errors import ConfigError, DreamerError
from dreamer.loops.deepdream import dream
from dreamer.loops.render import render
from dreamer.models import Network
from dreamer.objectives import Objective, build_objective, class_logit, layer_l2

# Tiled and untiled gradients differ only in the order float32 sums are taken (halo overlaps
# are added tile by tile; the objective's mean is a sum of per-tile parts): measured ~4e-7 of
# max |g|. 1e-5 leaves room for other CPUs' kernels while any real error (a missing halo, a
# misaligned crop, a wrong per-tile weight) is 1e-3 to 1.
GRAD_TOL = 1e-5


def _objective(network, *specs: str):
    return build_objective(network, [parse_layer_target(s) for s in specs])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _exact(network, objective, x):
    """The untiled reference gradient (the network's own modules, fp32, whole image)."""
    return PreparedNetwork(network, budget=2**50).gradient(x, objective, precision="fp32")


def _max_activation(node: str) -> Objective:
    return Objective(lambda acts: acts[node].amax((1, 2, 3)), [node], f"max({node})")


def _square_of_mean(node: str) -> Objective:
    return Objective(lambda acts: acts[node].mean((1, 2, 3)).pow(2), [node], f"mean({node})^2")


@pytest.fixture
def wide():
    """A smooth (2,3,100,132) batch: two images, sides that are not multiples of the stride."""
    g = torch.Generator().manual_seed(99)
    coarse = torch.rand(2, 3, 7, 9, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(100, 132), mode="bilinear", align_corners=False)


# -- layout ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size_hw,core,halo,stride", [((100, 132), 32, 48, 16), ((1080, 1920), 512, 112, 16), ((70, 33), 16, 8, 8)])
def test_tile_cores_partition_the_image(size_hw, core, halo, stride):
    h, w = size_hw
    tiles = tiling.plan_tiles(size_hw, core, halo, stride)
    owner = torch.zeros(h, w, dtype=torch.int32)
    for t in tiles:
        y0, y1, x0, x1 = t.core
        owner[y0:y1, x0:x1] += 1
        for edge, end in ((y0, h), (y1, h), (x0, w), (x1, w)):
            assert edge % stride == 0 or edge == end  # cores meet on the stride grid
        by0, by1, bx0, bx1 = t.box
        assert (by0, bx0) == (max(0, y0 - halo), max(0, x0 - halo))
        assert (by1, bx1) == (min(h, y1 + halo), min(w, x1 + halo))
        assert y1 - y0 <= core + stride and x1 - x0 <= core + stride
    assert bool((owner == 1).all())


def test_layout_halo_covers_the_receptive_field(network):
    layout = tiling.layout_for(network, _objective(network, "mixed4c"))
    assert layout.stride == 16 and layout.receptive_field == network.resolve("mixed4c").receptive_field
    assert layout.halo % layout.stride == 0
    assert layout.halo >= layout.receptive_field / 2 + layout.stride
    assert 2 * layout.halo >= layout.receptive_field  # neighbouring tiles overlap by more than one field
    mixed = tiling.layout_for(network, _objective(network, "mixed3a", "mixed4a=0.5"))
    assert mixed.strides == {"inception3a": 8, "inception4a": 16} and mixed.stride == 16


def test_global_and_custom_layers_are_not_tiled(network):
    assert tiling.layout_for(network, class_logit(3)) is None
    custom = Network.from_module(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()))
    assert tiling.layout_for(custom, build_objective(custom, [parse_layer_target("1")])) is None


# -- exactness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "specs,tile",
    [(("mixed3a",), 32), (("conv2",), 32), (("mixed4c",), 64), (("mixed3a", "mixed4a:3,7=0.5"), 48)],
)
def test_tiled_gradient_equals_untiled(network, wide, specs, tile):
    if "mixed4c" in specs:
        wide = wide[:1]  # deep layer: one image keeps the test quick
    objective = _objective(network, *specs)
    want_g, want_s = _exact(network, objective, wide)
    prepared = PreparedNetwork(network)
    got_g, got_s = prepared.gradient(wide, objective, precision="fp32", tile=tile)
    layout = tiling.layout_for(network, objective)
    assert prepared.last["tiles"] == len(tiling.plan_tiles(tuple(wide.shape[-2:]), tile, layout.halo, layout.stride)) > 1
    assert _rel(got_g, want_g) < GRAD_TOL
    assert torch.allclose(got_s, want_s, rtol=GRAD_TOL)


def test_a_sum_with_a_constant_tiles_exactly(network, wide):
    # each term is cut to its own node; the constant is counted once, not once per tile
    objective = 0.5 * layer_l2("inception3a") - layer_l2("inception4a", [3, 7]) + 2.5
    want_g, want_s = _exact(network, objective, wide)
    prepared = PreparedNetwork(network)
    got_g, got_s = prepared.gradient(wide, objective, precision="fp32", tile=48)
    assert prepared.last["tiles"] > 1
    assert _rel(got_g, want_g) < GRAD_TOL and torch.allclose(got_s, want_s, rtol=GRAD_TOL)


def test_a_halo_too_small_is_caught(network, wide):
    # the check above can fail: with one stride of halo, tiles miss part of the receptive field
    objective = _objective(network, "mixed3a")
    want, _ = _exact(network, objective, wide)
    layout = tiling.layout_for(network, objective)
    tiler = tiling.Tiler(exact_forward(network, objective.nodes), dataclasses.replace(layout, halo=layout.stride))
    got, _ = tiler.gradient(wide, objective, 32)
    assert _rel(got, want) > 1e-3


def test_untileable_objectives_are_never_tiled(network, wide):
    # a maximum or the square of a mean is not a sum of per-tile parts: tiling them gave
    # gradients 94% and 31% wrong; now an explicit tile size is refused ...
    for objective in (_max_activation("inception3a"), _square_of_mean("inception3a"), class_logit(7, "fc")):
        assert not objective.tileable and tiling.layout_for(network, objective) is None
        with pytest.raises(ConfigError, match="cannot be split into tiles"):
            PreparedNetwork(network).gradient(wide[:1], objective, precision="fp32", tile=32)
    # ... and a budget too small for the whole image runs it whole anyway, exactly
    objective = _max_activation("inception3a")
    want, _ = _exact(network, objective, wide)
    prepared = PreparedNetwork(network, budget=1)
    got, _ = prepared.gradient(wide, objective, precision="fp32")
    assert prepared.last["tiles"] == 1 and torch.equal(got, want)
    # a custom objective that declares itself a mean over positions is tiled, exactly
    mean = Objective(lambda acts: acts["inception3a"].mean((1, 2, 3)), ["inception3a"], "mean", tileable=True)
    want, _ = _exact(network, mean, wide)
    got, _ = prepared.gradient(wide, mean, precision="fp32", tile=32)
    assert prepared.last["tiles"] > 1 and _rel(got, want) < GRAD_TOL


def test_untileable_dream_with_a_tile_size_is_a_usage_error(network, wide):
    config = DreamConfig(layers=(), classes=("banana",), octaves=1, steps=1, tile=64)
    with pytest.raises(ConfigError) as info:
        dream(wide[:1], network, config)
    assert info.value.exit_code == 2 and "tile" in str(info.value)


def test_tiled_fast_path_with_transform_and_tv_equals_untiled(network, wide):
    config = DreamConfig(layers=("mixed3a",), octaves=1, steps=2, jitter=4, transforms="standard", tv_weight=0.5, seed=5)
    one = wide[:1]
    untiled = dream(one, network, config)
    prepared = PreparedNetwork(network)
    tiled = dream(one, prepared, config.replace(tile=64))
    assert prepared.last["tiles"] > 1 and prepared.last["path"] == "fast"
    assert float((tiled - untiled).abs().max()) < 1e-5


def test_tiled_and_untiled_dreams_agree(network, wide):
    # 2 octaves x 2 steps: differences of ~1e-7 in a gradient move pixels by ~1e-9; clamping
    # at 0 and 1 cannot amplify them. 1e-5 (0.003 of one 8-bit level) is far below visible.
    config = DreamConfig(layers=("mixed3a",), octaves=2, steps=2, jitter=8, precision="fp32", seed=1)
    one = wide[:1]
    untiled = dream(one, network, config)
    tiled = dream(one, network, config.replace(tile=64))
    assert float((tiled - untiled).abs().max()) < 1e-5
    assert float((tiled - one).abs().mean()) > 1e-3  # and both really dreamed


def test_the_render_loop_tiles_too(network, wide):
    # renders ask the same backend: a layer render split into tiles grows the same picture
    config = DreamConfig(layers=("mixed3a",), param="fft", transforms="standard", jitter=4, steps=2, precision="fp32", seed=2)
    one = wide[:1]
    untiled = render(one, network, config)
    prepared = PreparedNetwork(network)
    tiled = render(one, prepared, config.replace(tile=64))
    assert prepared.last["tiles"] > 1
    assert float((tiled - untiled).abs().max()) < 1e-5
    assert float((tiled - one).abs().mean()) > 1e-3


def test_the_network_never_sees_the_whole_image_when_tiled(network, wide):
    objective = _objective(network, "mixed3a")
    prepared = PreparedNetwork(network)
    seen = []

    def record(_m, inputs, _out):
        if inputs[0].device.type != "meta":  # (shape-only passes that size the output are free)
            seen.append(tuple(inputs[0].shape[-2:]))

    handle = network.module.conv1.register_forward_hook(record)
    try:
        prepared.gradient(wide, objective, precision="fp32", tile=32)
    finally:
        handle.remove()
    assert len(seen) == prepared.last["tiles"]
    halo = prepared.last["halo"]
    assert all(h <= 32 + 8 + 2 * halo and w <= 32 + 8 + 2 * halo for h, w in seen)
    assert (100, 132) not in seen


def test_tiles_make_no_float64_copies(network, wide):
    from torch.overrides import TorchFunctionMode

    big = wide[:1].numel()
    dtypes = set()

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor) and out.numel() >= big:
                dtypes.add(out.dtype)
            return out

    prepared = PreparedNetwork(network)
    objective = _objective(network, "mixed3a")
    prepared.gradient(wide[:1], objective, tile=32)  # prepares the folded copy outside the watch
    with Watch():
        grad, _ = prepared.gradient(wide, objective, tile=32)
    assert grad.dtype == torch.float32
    assert torch.float64 not in dtypes and torch.float32 in dtypes


# -- budget and out-of-memory ------------------------------------------------------------------


def test_small_budget_tiles_and_stays_exact(network, wide):
    objective = _objective(network, "mixed3a")
    one = wide[:1]
    prepared = PreparedNetwork(network)
    want, _ = prepared.gradient(one, objective, precision="fp32")
    assert prepared.last["tiles"] == 1  # fits the machine's budget
    bpp = tiling.probe_bytes_per_pixel(exact_forward(network, objective.nodes))
    budget = tiling.estimate_bytes(bpp, 1, (112, 112))  # room for a 48 px core and its halo
    layout = tiling.layout_for(network, objective)
    assert tiling.choose_core(one.shape, layout, tile=None, budget=budget, bytes_per_pixel=bpp) == 48
    assert tiling.choose_core(one.shape, layout, tile=None, budget=2**40, bytes_per_pixel=bpp) is None
    small = PreparedNetwork(network, budget=budget)
    got, _ = small.gradient(one, objective, precision="fp32")
    assert small.last["tiles"] > 1
    assert _rel(got, want) < GRAD_TOL


def test_memory_budget_is_positive_and_bounded():
    budget = tiling.memory_budget(torch.device("cpu"))
    assert 0 < budget
    info = tiling._meminfo()
    if info:
        assert budget <= info["MemTotal"] // 2 + 1


def _starve(monkeypatch, limit: int, error=torch.OutOfMemoryError) -> list[tuple[int, int]]:
    """Every forward pass of more than `limit` pixels runs out of memory; returns the sizes seen."""
    real = Forward.__call__
    sizes: list[tuple[int, int]] = []

    def starved(self, x):
        sizes.append(tuple(x.shape[-2:]))
        if x.shape[-2] * x.shape[-1] > limit:
            raise error("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
        return real(self, x)

    monkeypatch.setattr(Forward, "__call__", starved)
    return sizes


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, RuntimeError])
def test_out_of_memory_retries_with_smaller_tiles(network, wide, error, monkeypatch):
    objective = _objective(network, "mixed3a")
    want, want_s = _exact(network, objective, wide)
    prepared = PreparedNetwork(network, budget=2**40)
    sizes = _starve(monkeypatch, 100 * 100, error)
    got, got_s = prepared.gradient(wide, objective, precision="fp32")  # whole (100x132): OOM; 64 px cores fit
    tiles = prepared.last["tiles"]
    assert tiles > 1 and (100, 132) in sizes  # the whole image was tried first
    assert all(h * w <= 100 * 100 for h, w in sizes[-tiles:])
    assert _rel(got, want) < GRAD_TOL and torch.allclose(got_s, want_s, rtol=GRAD_TOL)
    # the size that worked is remembered: the next step goes straight to it
    calls = len(sizes)
    prepared.gradient(wide, objective, precision="fp32")
    assert len(sizes) - calls == tiles


def test_out_of_memory_at_the_smallest_tile_is_a_clean_error(network, wide, monkeypatch):
    objective = _objective(network, "mixed4c")
    prepared = PreparedNetwork(network, budget=2**40)
    _starve(monkeypatch, 1)
    with pytest.raises(DreamerError, match="out of memory") as info:
        prepared.gradient(wide, objective, precision="fp32")
    assert info.value.exit_code == 1 and info.value.hint


def test_out_of_memory_with_an_untileable_objective_says_why(network, wide, monkeypatch):
    prepared = PreparedNetwork(network, budget=2**40)
    _starve(monkeypatch, 1)
    with pytest.raises(DreamerError, match="cannot be split into tiles") as info:
        prepared.gradient(wide, _square_of_mean("inception3a"), precision="fp32")
    assert info.value.exit_code == 1 and "not a mean over positions" in info.value.message


def test_out_of_memory_in_a_dream_is_never_a_crash(network, wide, monkeypatch, tmp_path):
    # through the loop and the CLI's error mapping: exit code 1 and a message, no traceback
    from click.testing import CliRunner

    from dreamer.cli import main

    _starve(monkeypatch, 100 * 100)
    config = DreamConfig(layers=("mixed3a",), octaves=1, steps=1, jitter=0, seed=2)
    out = dream(wide, network, config)  # tiles small enough to pass exist: it just works
    assert out.shape == wide.shape
    monkeypatch.setattr(Forward, "__call__", lambda self, x: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    out_png = tmp_path / "x.png"
    result = CliRunner().invoke(main, ["run", "noise:96x80", "--weights", "random", "--device", "cpu",
                                       "--octaves", "1", "--steps", "1", "-o", str(out_png), "-q"])
    assert result.exit_code == 1, result.output
    assert "out of memory" in result.output and "Traceback" not in result.output
    assert not out_png.exists()


def test_out_of_memory_retry_sees_the_same_random_transform(network, wide, monkeypatch):
    # the step's random scale/rotation is drawn once, before the gradient: a retry after an
    # out-of-memory error must not draw again (the result would then depend on free memory)
    config = DreamConfig(layers=("mixed3a",), octaves=1, steps=2, jitter=4, transforms="standard", seed=5)
    planned = dream(wide, network, config.replace(tile=64))  # tiled from the start, never out of memory
    _starve(monkeypatch, 100 * 100)
    retried = dream(wide, network, config)  # whole image first: out of memory, then 64 px tiles
    assert torch.allclose(retried, planned, atol=1e-5)
