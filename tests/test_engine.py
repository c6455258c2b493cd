"""The dream engine: properties of the classic algorithm on a seeded random GoogLeNet.

Each dream is tiny (64x80 px, 1-4 steps) so the whole file runs in seconds on a CPU.
"""

from __future__ import annotations

import pytest
import torch

from dreamer.backend import PreparedNetwork
from dreamer.config import DreamConfig, LayerTarget
from dreamer.errors import ImageError
from dreamer.loops.deepdream import Progress, dream, octave_warning, plan_octaves
from dreamer.objectives import build_objective, channel, layer_l2

# small and fast: a shallow layer, one octave, a few steps, modest jitter
FAST = DreamConfig(layers=("mixed3a",), octaves=1, steps=2, jitter=4)


def _batch(seed: int, batch: int = 1, size=(64, 80)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 8, 10, generator=g)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def _score(network, config: DreamConfig, images: torch.Tensor) -> torch.Tensor:
    objective = build_objective(network, config.layers, config.classes)
    with torch.no_grad():
        return objective(network.extractor(objective.nodes)(images))


# --- the objective rises ------------------------------------------------------------------


def test_objective_rises_over_steps(network, image):
    config = FAST.replace(steps=4, jitter=0)
    seen: list[Progress] = []
    out = dream(image, network, config, progress=seen.append)
    scores = [p.objective.item() for p in seen]
    assert len(scores) == 4
    # each step is gradient ascent: every reported score beats the one before it
    assert all(b > a for a, b in zip(scores, scores[1:])), scores
    # and the final image scores higher than the last pre-step score and the start
    final = _score(network, config, out).item()
    assert final > scores[-1] > scores[0]
    assert scores[0] == pytest.approx(_score(network, config, image).item(), rel=1e-4)


def test_objective_rises_with_jitter_and_octaves(network, image):
    config = FAST.replace(octaves=2, octave_scale=1.4, steps=3, jitter=8)
    out = dream(image, network, config)
    assert _score(network, config, out).item() > 1.2 * _score(network, config, image).item()


def test_progress_reports_every_step(network, image):
    config = FAST.replace(octaves=2, octave_scale=1.4, steps=3, jitter=2)
    seen: list[Progress] = []
    dream(image, network, config, progress=seen.append)
    assert [p.done for p in seen] == list(range(1, 7))
    assert {p.total for p in seen} == {6}
    assert [(p.octave, p.step) for p in seen] == [(o, s) for o in range(2) for s in range(3)]
    assert all(p.octaves == 2 and p.steps == 3 for p in seen)
    assert all(p.objective.shape == (1,) for p in seen)


# --- input, shape, range ------------------------------------------------------------------


def test_input_tensor_is_untouched(network):
    images = _batch(5, batch=2)
    before = images.clone()
    dream(images, network, FAST.replace(octaves=2))
    assert torch.equal(images, before)
    assert not images.requires_grad


def test_shape_dtype_and_range_kept(network):
    images = _batch(6, batch=2, size=(48, 72))
    # a big step pushes many pixels past the ends of the range: they must be clamped
    out = dream(images, network, FAST.replace(steps=3, step_size=40.0))
    assert out.shape == images.shape
    assert out.dtype == torch.float32
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    assert (out == 0.0).any() and (out == 1.0).any()  # clamped, not rescaled
    assert (out - images).abs().mean().item() > 0.01  # and it did dream


def test_non_float32_input_is_accepted(network, image):
    out = dream(image.double(), network, FAST)
    assert out.dtype == torch.float32 and out.shape == image.shape


def test_bad_batch_shapes_are_rejected(network, image):
    with pytest.raises(ValueError):
        dream(image[0], network, FAST)  # (3,H,W): the engine wants a batch
    with pytest.raises(ValueError):
        dream(image[:, :1], network, FAST)  # one channel
    with pytest.raises(ValueError):
        dream(image, network, FAST, seeds=[1, 2])  # two seeds for one image


# --- seeds and batches --------------------------------------------------------------------


def test_same_seed_gives_identical_output(network, image):
    config = FAST.replace(octaves=2, jitter=8, seed=3)
    a = dream(image, network, config)
    b = dream(image, network, config)
    assert torch.equal(a, b)


def test_different_seed_gives_different_output(network, image):
    a = dream(image, network, FAST.replace(seed=1))
    b = dream(image, network, FAST.replace(seed=2))
    assert (a - b).abs().max().item() > 1e-3
    # seeds= overrides config.seed
    c = dream(image, network, FAST.replace(seed=1), seeds=[2])
    assert torch.equal(b, c)


def test_without_jitter_the_seed_does_not_matter(network, image):
    config = FAST.replace(jitter=0)
    assert torch.equal(dream(image, network, config, seeds=[1]), dream(image, network, config, seeds=[2]))


def test_batch_equals_each_image_alone(network):
    images = _batch(7, batch=2)
    config = FAST.replace(octaves=2, jitter=8)
    both = dream(images, network, config, seeds=[11, 12])
    first = dream(images[:1], network, config, seeds=[11])
    second = dream(images[1:], network, config, seeds=[12])
    # batched convolutions round differently: allow half a uint8 level
    torch.testing.assert_close(both[0], first[0], atol=2e-3, rtol=0)
    torch.testing.assert_close(both[1], second[0], atol=2e-3, rtol=0)
    # each image really used its own seed: the second image dreamed with the first's seed differs
    other = dream(images[1:], network, config, seeds=[11])
    assert (other[0] - both[1]).abs().max().item() > 0.05


def test_batch_with_random_scale_rotate_equals_each_image_alone(network):
    # each image draws its own scale and angle from its own seed, as it would alone
    images = _batch(7, batch=2)
    config = FAST.replace(octaves=1, jitter=8, transforms="standard")
    both = dream(images, network, config, seeds=[3, 4])
    first = dream(images[:1], network, config, seeds=[3])
    second = dream(images[1:], network, config, seeds=[4])
    torch.testing.assert_close(both[0], first[0], atol=2e-3, rtol=0)
    torch.testing.assert_close(both[1], second[0], atol=2e-3, rtol=0)


# --- octave planning ----------------------------------------------------------------------


def test_plan_octaves_sizes_smallest_first():
    plan = plan_octaves((200, 300), 3, 2.0, 32)
    assert plan.sizes == ((50, 75), (100, 150), (200, 300))
    assert plan.dropped == 0


def test_plan_octaves_drops_octaves_that_are_too_small():
    plan = plan_octaves((64, 80), 4, 1.4, 32)
    assert plan.sizes == ((33, 41), (46, 57), (64, 80))
    assert plan.dropped == 1
    # asking for the octaves that fit gives the same pyramid, with nothing dropped
    assert plan_octaves((64, 80), 3, 1.4, 32) == type(plan)(plan.sizes, 3)


def test_octave_warning_is_written_once_for_every_caller():
    config = DreamConfig(octaves=4, octave_scale=1.4)
    text = octave_warning("photo.png", (64, 80), config, 32)
    assert text == "photo.png (80x64) is too small for 4 octaves of scale 1.4; using 3"
    assert octave_warning("photo.png", (64, 80), config.replace(octaves=3), 32) is None
    # a render has no octaves to drop
    assert octave_warning("photo.png", (64, 80), config.replace(param="fft"), 32) is None
    with pytest.raises(ImageError):
        octave_warning("photo.png", (20, 80), config, 32)


def test_plan_octaves_exactly_min_size_is_one_octave():
    plan = plan_octaves((32, 50), 5, 1.4, 32)
    assert plan.sizes == ((32, 50),)
    assert plan.dropped == 4


def test_plan_octaves_refuses_images_below_min_size():
    with pytest.raises(ImageError) as info:
        plan_octaves((31, 400), 1, 1.4, 32)
    assert "32" in str(info.value) and "400x31" in str(info.value)


def test_dream_refuses_too_small_image(network):
    with pytest.raises(ImageError):
        dream(_batch(1, size=(20, 64)), network, FAST)


def test_dream_runs_only_the_planned_octaves(network, image):
    seen: list[Progress] = []
    dream(image, network, FAST.replace(octaves=6, octave_scale=1.4, steps=1, jitter=0), progress=seen.append)
    assert len(seen) == len(plan_octaves((64, 80), 6, 1.4, network.min_size).sizes) == 3


# --- the step and the octave loop, with a known gradient ----------------------------------


class StubBackend(PreparedNetwork):
    """A prepared network whose gradient is a given function of the images (nothing runs)."""

    def __init__(self, network, fn) -> None:
        super().__init__(network)
        self.fn = fn
        self.seen: list[torch.Tensor] = []

    def gradient(self, images, objective, *, precision="auto", tile=None):
        self.seen.append(images.detach().clone())
        return self.fn(images)


def _constant_gradient(value: float):
    def fn(x: torch.Tensor):
        return torch.full_like(x, value), torch.zeros(x.shape[0])

    return fn


def test_step_is_normalised_by_mean_absolute_gradient(network):
    base = torch.full((1, 3, 64, 64), 0.3)
    config = DreamConfig(octaves=1, steps=4, step_size=2.0, jitter=0)
    for magnitude in (1e-6, 7.0):
        out = dream(base, StubBackend(network, _constant_gradient(magnitude)), config)
        # each step moves by step_size in 0-255 units, whatever the gradient's magnitude
        torch.testing.assert_close(out, base + 4 * 2.0 / 255, atol=1e-6, rtol=0)


def test_detail_is_reinjected_from_octave_to_octave(network):
    base = 0.2 + 0.4 * _batch(3)  # values in [0.2, 0.6]: no clamping below
    config = DreamConfig(octaves=3, octave_scale=1.4, steps=2, step_size=3.0, jitter=0)
    out = dream(base, StubBackend(network, _constant_gradient(1.0)), config)
    # what the small octaves added is carried up: 3 octaves x 2 steps, not just the last 2
    torch.testing.assert_close(out, base + 6 * 3.0 / 255, atol=1e-5, rtol=0)


def test_two_octaves_differ_from_one(network, image):
    # without jitter the random generator plays no part: any difference is the small octave's detail
    one = dream(image, network, FAST.replace(jitter=0))
    two = dream(image, network, FAST.replace(octaves=2, octave_scale=1.4, jitter=0))
    assert (one - two).abs().mean().item() > 1e-3


def test_jitter_is_rolled_back(network, image):
    # a gradient that follows the image (shift-equivariant): rolling then un-rolling changes nothing
    def follow(x: torch.Tensor):
        return x - 0.5, torch.zeros(x.shape[0])

    config = DreamConfig(octaves=1, steps=3, step_size=10.0)
    still = dream(image, StubBackend(network, follow), config.replace(jitter=0))
    jittered = dream(image, StubBackend(network, follow), config.replace(jitter=16))
    torch.testing.assert_close(jittered, still, atol=1e-6, rtol=0)


def test_jitter_changes_where_a_fixed_gradient_lands(network):
    # a gradient fixed in the rolled frame lands somewhere else once rolled back
    ramp = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)

    def fixed(x: torch.Tensor):
        return ramp.expand_as(x).clone(), torch.zeros(x.shape[0])

    base = torch.full((1, 3, 64, 64), 0.5)
    config = DreamConfig(octaves=1, steps=1, step_size=10.0)
    still = dream(base, StubBackend(network, fixed), config.replace(jitter=0))
    jittered = dream(base, StubBackend(network, fixed), config.replace(jitter=16, seed=5))
    assert (still - jittered).abs().max().item() > 1e-3


# --- objectives ---------------------------------------------------------------------------


def test_layers_are_averaged_then_weighted(network, image):
    config = DreamConfig(layers=("mixed3a", "mixed4c:0-3=0.5"))
    objective = build_objective(network, config.layers)
    assert set(objective.nodes) == {"inception3a", "inception4c"}
    with torch.no_grad():
        acts = network.extractor(["inception3a", "inception4c"])(image)
        expected = acts["inception3a"].pow(2).mean() + 0.5 * acts["inception4c"][:, :4].pow(2).mean()
        got = objective(network.extractor(objective.nodes)(image))
    assert got.shape == (1,)
    torch.testing.assert_close(got[0], expected, rtol=1e-5, atol=0)


def test_objectives_compose(network, image):
    with torch.no_grad():
        acts = network.extractor(["inception4a", "inception4c"])(image)
        combined = 0.5 * channel("inception4a", 97) + layer_l2("inception4c") - layer_l2("inception4a")
        expected = (
            0.5 * acts["inception4a"][:, 97].mean() + acts["inception4c"].pow(2).mean() - acts["inception4a"].pow(2).mean()
        )
    assert set(combined.nodes) == {"inception4a", "inception4c"}
    torch.testing.assert_close(combined(acts)[0], expected, rtol=1e-5, atol=1e-6)


def test_class_objective_reads_the_logits(network, image):
    from dreamer.config import ClassTarget

    objective = build_objective(network, (), (ClassTarget("954"),))
    with torch.no_grad():
        logits = network.module((image - 0.5) / 0.5)
        got = objective(network.extractor(objective.nodes)(image))
    torch.testing.assert_close(got[0], logits[0, 954], rtol=1e-4, atol=1e-5)


# --- truncation ---------------------------------------------------------------------------


def _count_calls(module: torch.nn.Module, counts: dict, key: str):
    return module.register_forward_hook(lambda *_: counts.__setitem__(key, counts.get(key, 0) + 1))


class _Tripwire(torch.nn.Module):
    """Stands in for a module that must never run."""

    def forward(self, *args):
        raise AssertionError("a module after the deepest requested layer ran")


DEEPER_THAN_4C = ("inception4d", "inception4e", "maxpool4", "inception5a", "inception5b", "avgpool", "dropout", "fc")


@pytest.fixture(scope="module")
def tripwired(network):
    """The random GoogLeNet with every module after mixed4c replaced by a tripwire."""
    import copy

    from dreamer.models import Network

    module = copy.deepcopy(network.module)
    for name in DEEPER_THAN_4C + ("aux1", "aux2"):
        setattr(module, name, _Tripwire())
    spec = network.spec
    return Network(module, name=spec.name, weights=network.weights, mean=spec.mean, std=spec.std, spec=spec)


def test_forward_stops_at_the_deepest_requested_layer(tripwired, image):
    # on the default path, whatever computes the gradient (the module itself or a prepared copy)
    out = dream(image, tripwired, FAST.replace(layers=("mixed4c", "mixed3a=0.5"), steps=1))
    assert out.shape == image.shape
    with pytest.raises(AssertionError, match="deepest requested layer"):
        dream(image, tripwired, FAST.replace(layers=("mixed4d",), steps=1))


def test_forward_hooks_show_the_stop(network, image):
    counts: dict[str, int] = {}
    watched = ("inception3a", "inception3b", "maxpool3", "inception5b", "fc", "aux1", "aux2")
    handles = [_count_calls(network.module.get_submodule(n), counts, n) for n in watched]
    try:
        # fp32 is the reference path, run on the network's own modules
        dream(image, network, FAST.replace(precision="fp32"))
    finally:
        for h in handles:
            h.remove()
    assert counts.get("inception3a", 0) >= 2  # the hooks work: the requested layer ran (each step)
    for deeper in watched[1:]:
        assert deeper not in counts, f"{deeper} ran although mixed3a was the deepest layer"


def test_extractor_has_no_stages_after_the_deepest_node(network):
    extractor = network.extractor(["inception3a", "inception4a"])
    assert extractor.names[-1] == "inception4a"
    assert "inception4b" not in extractor.names
    owned = {id(m) for m in extractor.modules()}
    for later in ("inception4b", "inception5b", "fc"):
        assert id(network.module.get_submodule(later)) not in owned
    # and a shallow layer is a short network
    assert network.extractor(["conv1"]).names == ["conv1"]


def test_extractor_output_matches_the_full_network(network, image):
    with torch.no_grad():
        acts = network.extractor(["inception4c", "fc"])(image)
        full = network.module((image - 0.5) / 0.5)
    torch.testing.assert_close(acts["fc"], full, rtol=1e-4, atol=1e-5)
    assert set(acts) == {"inception4c", "fc"}


def test_unknown_targets_fail_before_any_step(network, image):
    seen: list = []
    from dreamer.errors import ConfigError, UnknownNameError

    with pytest.raises(UnknownNameError):
        dream(image, network, DreamConfig(layers=(LayerTarget("mixed9z"),)), progress=seen.append)
    with pytest.raises(ConfigError):
        dream(image, network, DreamConfig(layers=("mixed4c:512",)), progress=seen.append)
    assert seen == []


# --- CUDA (runs only where there is one) --------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_same_seed_identical_and_range_kept(image):
    from dreamer.models import load_model

    gpu = load_model("googlenet", weights="random:0", device="cuda")
    config = DreamConfig(octaves=2, steps=3, jitter=8, seed=4)
    a = dream(image, gpu, config)
    b = dream(image.cuda(), gpu, config)
    assert a.device.type == "cuda" and a.shape == image.shape
    assert torch.equal(a, b)
    assert a.min().item() >= 0.0 and a.max().item() <= 1.0
    assert (a.cpu() - image).abs().mean().item() > 1e-3
