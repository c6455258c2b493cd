"""Tests for ImageNet class names: resolving, searching, `dreamer classes`, class objectives."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from dreamer.classes import model_categories, normalize_class_name, resolve_class, search_classes
from dreamer.cli import main
from dreamer.config import DreamConfig
from dreamer.loops.deepdream import dream
from dreamer.errors import ConfigError, UnknownNameError
from dreamer.io.images import make_noise

#: the classes of the lecture slide, as torchvision spells them, with their indices
SLIDE = {
    "hartebeest": 351,
    "measuring cup": 647,
    "ant": 310,
    "starfish": 327,
    "anemone fish": 393,
    "banana": 954,
    "parachute": 701,
    "screw": 783,
}


@pytest.fixture(scope="module")
def categories():
    return model_categories("googlenet")


def test_categories_come_with_the_model(categories, network):
    assert len(categories) == 1000
    assert network.categories == categories
    for name, index in SLIDE.items():
        assert categories[index] == name


@pytest.mark.parametrize(
    "text, index",
    [("banana", 954), ("Banana", 954), (" 954 ", 954), ("0", 0), ("anemone fish", 393),
     ("Anemone_Fish", 393), ("measuring-cup", 647), ("MEASURING  CUP", 647)],
)
def test_resolve_class(categories, text, index):
    assert resolve_class(text, categories) == index


def test_resolve_class_errors(categories):
    with pytest.raises(UnknownNameError) as info:
        resolve_class("bananna", categories)
    assert info.value.exit_code == 2
    assert "banana" in info.value.suggestions
    assert "dreamer classes" in str(info.value)
    with pytest.raises(ConfigError) as info:
        resolve_class("1000", categories)
    assert "0-999" in str(info.value) and info.value.exit_code == 2


def test_resolve_class_is_reexported_by_objectives():
    from dreamer import objectives

    assert objectives.resolve_class is resolve_class


def test_search_classes(categories):
    hits = search_classes("fish", categories)
    assert (393, "anemone fish") in hits and (327, "starfish") in hits
    assert all("fish" in name for _, name in hits)
    assert [i for i, _ in hits] == sorted(i for i, _ in hits)
    assert search_classes("FISH", categories) == hits
    assert search_classes("anemone_fish", categories) == [(393, "anemone fish")]
    assert search_classes(None, categories) == list(enumerate(categories))
    assert search_classes("954", categories) == [(954, "banana")]
    assert search_classes("5000", categories) == []
    assert search_classes("no such thing", categories) == []
    assert normalize_class_name("  Anemone--fish_ ") == "anemone fish"


def test_cli_classes_lists_and_searches():
    runner = CliRunner()
    result = runner.invoke(main, ["classes"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1000
    assert lines[954].split(None, 1) == ["954", "banana"]
    result = runner.invoke(main, ["classes", "Cup"])
    assert result.exit_code == 0
    names = [line.split(None, 1)[1] for line in result.output.splitlines()]
    assert "measuring cup" in names and all("cup" in n for n in names)


def test_cli_classes_no_match():
    result = CliRunner().invoke(main, ["classes", "bananna"])
    assert result.exit_code == 2  # a name typed that matches nothing: a usage error, as run --class
    assert "no class name contains 'bananna'" in result.output and "'banana'" in result.output
    result = CliRunner().invoke(main, ["classes", "1234"])
    assert result.exit_code == 2 and "0-999" in result.output


def test_cli_run_unknown_class_exits_2(tmp_path, monkeypatch, network):
    monkeypatch.setattr("dreamer.cli.run.open_network", lambda *a, **k: network)
    out = tmp_path / "x.png"
    result = CliRunner().invoke(main, ["run", "noise:48x48", "--class", "bananna", "-q", "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "unknown class 'bananna'" in result.output and "'banana'" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_pixel_dream_raises_class_logit(network):
    """The classic engine with a class objective: the class's logit rises, more than most."""
    start = make_noise((48, 48), seed=0)
    fc = network.extractor(["fc"])
    with torch.no_grad():
        before = fc(start)["fc"][0]
    config = DreamConfig(layers=(), classes=("starfish",), octaves=1, steps=3, step_size=8, jitter=0)
    out = dream(start, network, config)
    with torch.no_grad():
        delta = fc(out)["fc"][0] - before
    assert delta[327] > 0.1
    assert int((delta > delta[327]).sum()) < 200  # in the top fifth of 1000


def test_weighted_classes_combine(network):
    """Two classes with weights: the heavier one rises more than it would with the weights swapped."""
    start = make_noise((48, 48), seed=0)
    fc = network.extractor(["fc"])

    def gains(classes):
        config = DreamConfig(layers=(), classes=classes, param="fft", transforms="none", jitter=0, steps=2)
        from dreamer.loops.render import render

        with torch.no_grad():
            before = fc(start)["fc"][0]
        out = render(start, network, config)
        with torch.no_grad():
            d = fc(out)["fc"][0] - before
        return d[954].item(), d[310].item()

    banana_heavy = gains(("banana=1", "ant=0.1"))
    ant_heavy = gains(("banana=0.1", "ant=1"))
    assert banana_heavy[0] > ant_heavy[0] and ant_heavy[1] > banana_heavy[1]
    assert banana_heavy[0] > 0 and ant_heavy[1] > 0
