"""A loaded network, and the truncated forward passes that read its activations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..errors import ConfigError, UnknownNameError
from .spec import IMAGENET_MEAN, IMAGENET_STD, ROLE_PREFIX, LayerInfo, ModelSpec

__all__ = ["Network", "StagedExtractor", "HookExtractor"]


class _Normalize(nn.Module):
    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class StagedExtractor(nn.Module):
    """Runs the network's stages in order and stops after the deepest requested node.

    Input (B,3,H,W) RGB in [0,1] on the network's device; output a dict node -> activation.
    The stages after the deepest node are not part of this module at all.
    """

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], taps: Sequence[str], normalize: nn.Module) -> None:
        super().__init__()
        self.normalize = normalize
        self.names = [name for name, _ in stages]
        self.stages = nn.ModuleList(module for _, module in stages)
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalize(x)
        out: dict[str, torch.Tensor] = {}
        for name, stage in zip(self.names, self.stages):
            x = stage(x)
            if name in self.taps:
                out[name] = x
        return out


class _Stop(Exception):
    """Raised by a hook once every requested activation is captured: the rest is not run."""


class HookExtractor(nn.Module):
    """Reads activations of any module by path with forward hooks, stopping once all are seen.

    Hooks live only for the duration of one forward call.
    """

    def __init__(self, module: nn.Module, taps: Sequence[str], normalize: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.normalize = normalize
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        modules = dict(self.module.named_modules())

        def hook_for(node: str):
            def hook(_m: nn.Module, _inp: object, output: torch.Tensor) -> None:
                out[node] = output
                if len(out) == len(self.taps):
                    raise _Stop

            return hook

        handles = [modules[node].register_forward_hook(hook_for(node)) for node in self.taps]
        try:
            self.module(self.normalize(x))
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [t for t in self.taps if t not in out]
        if missing:
            raise ConfigError("layer", missing[0], "a module that runs in the network's forward pass")
        return out


class Network:
    """A network ready to dream with: weights loaded, eval mode, frozen, on one device.

    Build one with `dreamer.load_model` (registry models) or `Network.from_module` (your own
    `torch.nn.Module`, layers named by module path such as ``"features.10"``).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        weights: str,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        spec: ModelSpec | None = None,
        min_size: int = 32,
        roles: dict[str, str] | None = None,
    ) -> None:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self.module = module
        self.name = name
        self.weights = weights
        self.spec = spec
        self.min_size = spec.min_size if spec else min_size
        self.roles = spec.role_layers() if spec else dict(roles or {})
        self.normalize = _Normalize(mean, std).to(self.device)

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        name: str = "custom",
        min_size: int = 32,
        roles: dict[str, str] | None = None,
    ) -> Network:
        """Wrap your own network. `mean`/`std` normalise [0,1] RGB input the way it was trained.

        `roles` optionally maps role names (``{"deep": "features.28"}``) to module paths, so
        presets that name roles (``@deep``) work with it too."""
        return cls(module, name=name, weights="user module", mean=mean, std=std, min_size=min_size, roles=roles)

    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def categories(self) -> tuple[str, ...]:
        return self.spec.categories if self.spec else ()

    def to(self, device: torch.device | str) -> Network:
        self.module.to(device)
        self.normalize.to(device)
        return self

    def layers(self) -> tuple[LayerInfo, ...]:
        """The named layers (registry models), shallow to deep."""
        return self.spec.layers if self.spec else ()

    def resolve(self, layer: str) -> LayerInfo:
        """The layer called `layer` (a name, an alias, a role such as ``@deep``, or for custom
        networks a module path)."""
        if self.spec is None:
            if layer.startswith(ROLE_PREFIX):
                role = layer[len(ROLE_PREFIX):].lower()
                if role not in self.roles:
                    listing = "Network.from_module(..., roles={...})"
                    raise UnknownNameError("role", layer, [ROLE_PREFIX + r for r in self.roles], listing=listing)
                return self.resolve(self.roles[role])
            modules = dict(self.module.named_modules())
            if layer not in modules or layer == "":
                raise UnknownNameError("layer", layer, [n for n in modules if n])
            return LayerInfo(layer, layer, None, None)
        return self.spec.resolve(layer)

    def extractor(self, nodes: Sequence[str]) -> nn.Module:
        """A module mapping (B,3,H,W) [0,1] input to {node: activation}, run only as deep as needed."""
        nodes = tuple(dict.fromkeys(nodes))
        if self.spec is None:
            return HookExtractor(self.module, nodes, self.normalize)
        order = {n: i for i, n in enumerate(self.spec.stages)}
        unknown = [n for n in nodes if n not in order]
        if unknown:
            raise ConfigError("layer", unknown[0], "a node of " + self.name)
        last = max(order[n] for n in nodes)
        stages = []
        for name in self.spec.stages[: last + 1]:
            stage = nn.Flatten(1) if name == "flatten" else self.module.get_submodule(name)
            stages.append((name, stage))
        return StagedExtractor(stages, nodes, self.normalize)


