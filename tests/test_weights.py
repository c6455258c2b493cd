"""Weights, offline: the real torch-hub loading path with a state dict we wrote ourselves,
local files, corrupt caches, download failures (no network is ever used) and random weights."""

from __future__ import annotations

import email.message
import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from dreamer.cli import main
from dreamer.errors import UsageError, WeightsError
from dreamer.io.images import read_metadata
from dreamer.io.metadata import parse_metadata
from dreamer.models import cache_path, get_spec, load_model, parse_weights

URL = get_spec("googlenet").weights_url


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty torch hub cache for each test."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def attempts(monkeypatch) -> list[str]:
    """No network: every download fails as it does offline; the URLs tried are recorded."""
    tried: list[str] = []

    def offline(request, *args, **kwargs):
        tried.append(getattr(request, "full_url", str(request)))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    return tried


@pytest.fixture(scope="module")
def state():
    """A GoogLeNet state dict unlike the random:0 one (every float tensor shifted)."""
    net = load_model("googlenet", weights="random:3")
    return {k: (v + 0.25 if v.is_floating_point() else v).clone() for k, v in net.module.state_dict().items()}


def _small_png(path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).resize((80, 64)).save(path)
    return path


def _assert_loaded(network, expected: dict) -> None:
    loaded = network.module.state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


# --- pretrained, through the torch hub cache ----------------------------------------------


def test_cache_path_is_the_torch_hub_checkpoint(torch_home):
    path = cache_path(URL)
    assert path == torch_home / "hub" / "checkpoints" / "googlenet-1378be20.pth"


def test_pretrained_loads_from_the_hub_cache_without_network(attempts, state):
    path = cache_path(URL)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    network = load_model("googlenet")  # the default: pretrained
    _assert_loaded(network, state)
    assert network.weights == "pretrained"
    assert attempts == []  # nothing was downloaded


def test_pretrained_without_cache_fails_offline_with_a_way_out(attempts, capsys):
    with pytest.raises(WeightsError) as info:
        load_model("googlenet", weights="pretrained")
    assert capsys.readouterr().out == ""  # torch hub's "Downloading ..." notice is not a result
    err = info.value
    message = str(err)
    assert err.exit_code == 1
    assert URL in err.message
    assert str(cache_path(URL)) in err.message
    assert "--weights PATH" in err.hint
    assert "name resolution" in err.message  # the reason
    assert len(err.message.splitlines()) == 1 and len(message.splitlines()) == 2
    assert attempts == [URL]
    # the failed download leaves nothing in the cache
    assert list(cache_path(URL).parent.iterdir()) == []


class _FakeResponse:
    def __init__(self, data: bytes) -> None:
        self.body = io.BytesIO(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def info(self):
        return email.message.Message()

    def read(self, n: int = -1) -> bytes:
        return self.body.read(n)


def test_download_with_a_bad_hash_is_refused_and_not_cached(monkeypatch, state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    monkeypatch.setattr(torch.hub, "urlopen", lambda *a, **k: _FakeResponse(buffer.getvalue()))
    with pytest.raises(WeightsError) as info:
        load_model("googlenet")
    assert "hash" in info.value.message and URL in info.value.message
    assert "--weights PATH" in info.value.hint
    assert not cache_path(URL).exists()
    assert list(cache_path(URL).parent.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [b"this is not a checkpoint", b"", b"PK\x03\x04 a broken zip"],
    ids=["text", "empty", "broken-zip"],
)
def test_corrupt_cache_file_is_named(content):
    path = cache_path(URL)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(WeightsError) as info:
        load_model("googlenet")
    assert str(path) in info.value.message
    assert "delete it" in info.value.message
    assert len(info.value.message.splitlines()) == 1


def test_truncated_cache_file_is_named(state):
    path = cache_path(URL)
    path.parent.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(WeightsError) as info:
        load_model("googlenet")
    assert str(path) in info.value.message
    assert len(info.value.message.splitlines()) == 1


def test_cache_file_with_wrong_keys(state):
    path = cache_path(URL)
    path.parent.mkdir(parents=True)
    torch.save({"encoder." + k: v for k, v in state.items()}, path)
    with pytest.raises(WeightsError) as info:
        load_model("googlenet")
    assert str(path) in info.value.message
    assert "missing" in info.value.message and "unexpected" in info.value.message


# --- a local file -------------------------------------------------------------------------


def test_weights_from_a_file(tmp_path, state, attempts):
    path = tmp_path / "mine.pth"
    torch.save(state, path)
    network = load_model("googlenet", weights=path)
    _assert_loaded(network, state)
    assert network.weights == str(path)
    assert attempts == []


def test_weights_file_in_a_checkpoint_dict(tmp_path, state):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": state, "epoch": torch.tensor(3)}, path)
    _assert_loaded(load_model("googlenet", weights=str(path)), state)


def test_weights_file_without_aux_heads_loads(tmp_path, state):
    # fine-tuned GoogLeNets are often saved without the auxiliary classifiers
    path = tmp_path / "noaux.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}, path)
    network = load_model("googlenet", weights=path)
    assert torch.equal(network.module.state_dict()["inception4c.branch1.conv.weight"], state["inception4c.branch1.conv.weight"])


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda s: {k: v for k, v in s.items() if not k.startswith("inception5b.")}, "missing"),
        (lambda s: {**s, "extra.weight": torch.zeros(1)}, "unexpected"),
        (lambda s: {**s, "fc.weight": torch.zeros(10, 1024), "fc.bias": torch.zeros(10)}, "size mismatch"),
        (lambda s: [1, 2, 3], "state dict"),
        (lambda s: {"conv1.conv.weight": "text"}, "state dict of tensors"),
    ],
    ids=["missing-keys", "unexpected-keys", "wrong-shape", "not-a-dict", "not-tensors"],
)
def test_bad_weights_file(tmp_path, state, make, words):
    path = tmp_path / "bad.pth"
    torch.save(make(state), path)
    with pytest.raises(WeightsError) as info:
        load_model("googlenet", weights=path)
    assert str(path) in info.value.message
    assert words in info.value.message or words in str(info.value)
    assert len(info.value.message.splitlines()) == 1


def test_weights_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(WeightsError) as info:
        load_model("googlenet", weights=path)
    assert str(path) in info.value.message


@pytest.mark.parametrize("value", ["random:x", "random:-1", "random:9223372036854775808", "no/such/file.pth"])
def test_bad_weights_choice_is_a_usage_error(value):
    with pytest.raises(UsageError):
        parse_weights(value)


def test_weights_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        parse_weights(tmp_path)


# --- random -------------------------------------------------------------------------------


def test_random_weights_are_seeded(network):
    again = load_model("googlenet", weights="random")  # random means random:0
    other = load_model("googlenet", weights="random:1")
    assert again.weights == "random:0" and other.weights == "random:1"
    key = "inception4c.branch2.1.conv.weight"
    assert torch.equal(again.module.state_dict()[key], network.module.state_dict()[key])
    assert not torch.equal(other.module.state_dict()[key], network.module.state_dict()[key])


# --- through the command line -------------------------------------------------------------

FAST = ["--octaves", "1", "--steps", "1", "--jitter", "2", "--layer", "mixed3a"]


def test_cli_random_weights_warn_and_say_so_in_metadata(tmp_path):
    src = _small_png(tmp_path / "in.png")
    result = CliRunner().invoke(main, ["run", str(src), "--weights", "random", *FAST])
    assert result.exit_code == 0, result.output
    assert "Warning: using untrained weights (random:0)" in result.stderr
    record = parse_metadata(read_metadata(tmp_path / "in.dream.png"))
    assert record["weights"] == "random:0"
    # --quiet keeps the warning out
    quiet = CliRunner().invoke(main, ["run", str(src), "--weights", "random", "-q", "-f", *FAST])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_cli_weights_path_gives_what_those_weights_give(tmp_path, network):
    src = _small_png(tmp_path / "in.png")
    weights = tmp_path / "w.pth"
    torch.save(network.module.state_dict(), weights)  # the random:0 network, as a file
    runner = CliRunner()
    by_file = runner.invoke(main, ["run", str(src), "--weights", str(weights), "-o", str(tmp_path / "a.png"), *FAST])
    assert by_file.exit_code == 0, by_file.output
    assert "Warning" not in by_file.stderr
    by_seed = runner.invoke(main, ["run", str(src), "--weights", "random:0", "-o", str(tmp_path / "b.png"), *FAST])
    assert by_seed.exit_code == 0, by_seed.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))
    record = read_metadata(tmp_path / "a.png")
    assert record["weights"] == str(weights)


def test_cli_pretrained_from_cache(tmp_path, network):
    path = cache_path(URL)
    path.parent.mkdir(parents=True)
    torch.save(network.module.state_dict(), path)
    src = _small_png(tmp_path / "in.png")
    result = CliRunner().invoke(main, ["run", str(src), *FAST])
    assert result.exit_code == 0, result.output
    assert parse_metadata(read_metadata(tmp_path / "in.dream.png"))["weights"] == "pretrained"


def test_cli_offline_download_failure(tmp_path, attempts):
    (tmp_path / "photos").mkdir()
    src = _small_png(tmp_path / "photos" / "in.png")
    result = CliRunner().invoke(main, ["run", str(src), *FAST])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert URL in errors[0] and str(cache_path(URL)) in errors[0]
    assert "--weights PATH" in result.stderr
    assert result.stdout == ""
    assert attempts == [URL]
    assert [p.name for p in src.parent.iterdir()] == ["in.png"]  # no output, no temporary file
    assert list(cache_path(URL).parent.iterdir()) == []  # no partial download


@pytest.mark.parametrize("value", ["random:x", "missing.pth"])
def test_cli_bad_weights_value(tmp_path, value):
    src = _small_png(tmp_path / "in.png")
    result = CliRunner().invoke(main, ["run", str(src), "--weights", value, *FAST])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert value in result.stderr
    assert not (tmp_path / "in.dream.png").exists()
