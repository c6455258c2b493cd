"""Obtaining weights: pretrained (torch hub cache), a local state-dict file, or seeded random."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import urllib.error
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import UsageError, WeightsError
from .spec import ModelSpec

__all__ = [
    "WeightsChoice",
    "parse_weights",
    "cache_path",
    "load_weights",
    "packaged_path",
    "weights_status",
    "RANDOM_SEED_DEFAULT",
]

RANDOM_SEED_DEFAULT = 0


class WeightsChoice:
    """A parsed ``--weights`` value: ``pretrained``, ``random`` / ``random:SEED``, or a file path."""

    def __init__(self, kind: str, path: Path | None = None, seed: int = RANDOM_SEED_DEFAULT) -> None:
        self.kind = kind
        self.path = path
        self.seed = seed

    def __str__(self) -> str:
        if self.kind == "path":
            return str(self.path)
        if self.kind == "random":
            return f"random:{self.seed}"
        return self.kind


def parse_weights(value: str | os.PathLike | None) -> WeightsChoice:
    """Parse the user's weights choice (default ``pretrained``)."""
    if value is None or str(value) == "pretrained":
        return WeightsChoice("pretrained")
    text = str(value)
    if text == "random" or text.startswith("random:"):
        seed_text = text.partition(":")[2] or str(RANDOM_SEED_DEFAULT)
        if not seed_text.isdigit() or int(seed_text) >= 2**63:
            raise UsageError(f"invalid weights {text!r}: use random or random:SEED with SEED from 0 to 2**63-1")
        return WeightsChoice("random", seed=int(seed_text))
    path = Path(text).expanduser()
    if not path.exists():
        raise UsageError(
            f"weights file {text!r} does not exist",
            hint="use --weights pretrained, --weights random, or the path of a state-dict file",
        )
    if path.is_dir():
        raise UsageError(f"weights path {text!r} is a directory, not a state-dict file")
    return WeightsChoice("path", path=path)


def cache_path(url: str) -> Path:
    """Where torch hub keeps (or will keep) the file downloaded from `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _random_init(module: nn.Module, seed: int) -> None:
    # Kaiming init keeps activations at a usable scale through the depth of the network,
    # so a random network behaves like a real one for tests and benchmarks.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (1.0 / m.in_features) ** 0.5)
                m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)


def _reason(exc: BaseException) -> str:
    """A short one-line reason from an exception (torch's load errors run to paragraphs)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    if len(text) > 120 and ". " in text:
        text = text.split(". ", 1)[0]
    return text


def _read_state_dict(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's weights-only unpickler raises anything (KeyError, IndexError ...) on junk
        raise WeightsError(
            f"cannot read weights file {path}: {_reason(exc)}",
            hint="it must be a PyTorch state dict saved with torch.save(model.state_dict(), path)",
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    return obj


def packaged_path(spec: ModelSpec) -> Path:
    """The pretrained weights file inside the installed package that ships it (no download).

    WeightsError (exit 1) saying what to install when the package is missing."""
    packaged = spec.packaged
    assert packaged is not None
    try:
        module = importlib.import_module(packaged.module)
    except ImportError:
        raise WeightsError(
            f"the pretrained {spec.name} weights come with the package {packaged.requirement}, "
            f"which is not installed: {packaged.install}",
            hint="--weights PATH (a state-dict file) or --weights random work without it",
        ) from None
    target: Any = module
    try:
        for part in packaged.locate.split("."):
            target = getattr(target, part)
        path = Path(target())
    except Exception as exc:  # noqa: BLE001 - a broken or changed package: say which
        raise WeightsError(
            f"the package {packaged.requirement} does not say where its weights are ({_reason(exc)})",
            hint=f"reinstall it: {packaged.install}",
        ) from None
    if not path.is_file():
        raise WeightsError(
            f"the weights file {path} of the package {packaged.requirement} is missing",
            hint=f"reinstall it: {packaged.install}",
        )
    return path


def weights_status(spec: ModelSpec) -> tuple[str, bool]:
    """(where the pretrained weights come from, whether they are here now without a download).

    Imports nothing heavy: it looks for the cache file or the package only."""
    if spec.packaged is not None:
        found = importlib.util.find_spec(spec.packaged.module) is not None
        return f"package {spec.packaged.requirement}", found
    if spec.weights_url is not None:
        return f"download {spec.weights_url}", cache_path(spec.weights_url).is_file()
    return "none (use --weights PATH)", False


def _fetch(spec: ModelSpec, progress: bool) -> dict[str, Any]:
    if spec.packaged is not None:
        return _read_state_dict(packaged_path(spec))
    if spec.fetch_pretrained is None or spec.weights_url is None:
        raise WeightsError(f"model {spec.name!r} has no pretrained weights", hint="use --weights PATH")
    url = spec.weights_url
    cached = cache_path(url)
    way_out = (
        f"download {url} yourself and pass --weights PATH (or put it at {cached}); "
        "--weights random gives an untrained network for trying things out"
    )
    try:
        # torch hub announces downloads on stdout, which is for results (dreamer run prints paths)
        with contextlib.redirect_stdout(sys.stderr):
            return spec.fetch_pretrained(progress)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        reason = _reason(getattr(exc, "reason", None) or exc)
        raise WeightsError(
            f"could not download the pretrained {spec.name} weights from {url} "
            f"(expected cache file {cached}): {reason}",
            hint=way_out,
        ) from None
    except RuntimeError as exc:
        text = _reason(exc)
        if "hash" in text.lower():
            what = f"the download from {url} failed its hash check ({text})"
        else:
            what = f"the cached weights file {cached} is corrupt or unreadable ({text}); delete it to download again"
        raise WeightsError(what, hint=way_out) from None
    except Exception as exc:  # noqa: BLE001 - a junk cache file makes torch's unpickler raise anything
        detail = type(exc).__name__ if _reason(exc) == type(exc).__name__ else f"{type(exc).__name__}: {_reason(exc)}"
        raise WeightsError(
            f"the cached weights file {cached} is corrupt ({detail}); delete it to download again",
            hint=way_out,
        ) from None


def _source(spec: ModelSpec, choice: WeightsChoice) -> Path | str:
    if choice.kind == "path":
        return choice.path  # type: ignore[return-value]
    if spec.packaged is not None:
        return packaged_path(spec)
    return cache_path(spec.weights_url or "")


def load_weights(module: nn.Module, spec: ModelSpec, choice: WeightsChoice, *, progress: bool = False) -> None:
    """Put the chosen weights into `module` (built by ``spec.build``), in place.

    Every key and shape is checked: only keys under `spec.optional_keys` (auxiliary heads)
    may be missing from the file."""
    if choice.kind == "random":
        _random_init(module, choice.seed)
        return
    state = _fetch(spec, progress) if choice.kind == "pretrained" else _read_state_dict(choice.path)
    source = _source(spec, choice)
    what = f"the file must be a state dict of {spec.name}"
    if spec.convert_state_dict is not None:
        state = spec.convert_state_dict(state)
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise WeightsError(f"weights in {source} do not fit {spec.name}: {first[0].strip()}", hint=what) from None
    # auxiliary heads are optional (fine-tuned models often drop them); everything else must match
    optional = spec.optional_keys
    missing = [k for k in result.missing_keys if not (optional and k.startswith(optional))]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise WeightsError(f"weights in {source} do not fit {spec.name}: {'; '.join(parts)}", hint=what)
