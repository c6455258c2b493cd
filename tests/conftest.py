"""Shared fixtures: a seeded random-weight GoogLeNet stands in for the pretrained one."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def network():
    """A random-initialised GoogLeNet on the CPU (seeded, so every run sees the same network).

    Shared by the whole session: tests must not modify it.
    """
    from dreamer.models import load_model

    return load_model("googlenet", weights="random:0", device="cpu")


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
