"""`dreamer bench`: runs in CI size and writes valid JSON; the reference is the classic recipe."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from dreamer import bench
from dreamer.cli import main
from dreamer.config import DreamConfig
from dreamer.io.images import make_noise
from dreamer.loops.deepdream import dream, plan_octaves
from dreamer.loops.render import render


def test_bench_runs_tiny_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        main, ["bench", "--tiny", "--device", "cpu", "--cases", "frame512,batch16", "--json", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "speed-up" in result.output and "16 frames 512x512" in result.output
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["layer"] == "mixed4c" and data["repeats"] == 1
    assert data["weights"].startswith("random")
    names = [c["case"]["name"] for c in data["cases"]]
    assert names == ["frame512", "batch16"]
    for case in data["cases"]:
        assert case["reference_ms"] > 0 and case["dreamer_ms"] > 0
        assert case["speedup"] == pytest.approx(case["reference_ms"] / case["dreamer_ms"])
        assert case["speedup_paired_median"] == pytest.approx(case["speedup"])  # one run each
        assert max(case["case"]["size_hw"]) <= 96
        assert case["dreamer_path"]["path"] == "fast"
    batch = data["cases"][1]
    assert batch["case"]["batch"] == 2 and batch["reference_frames"] == 1
    # the reference ran one frame; its time is scaled to the batch
    assert batch["reference_ms"] == pytest.approx(batch["reference_runs_ms"][0])
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_bench_rejects_unknown_cases_and_layers(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["bench", "--tiny", "--device", "cpu", "--cases", "frame51"])
    assert result.exit_code == 2 and "frame512" in result.output
    result = runner.invoke(main, ["bench", "--tiny", "--device", "cpu", "--layer", "mixed9z"])
    assert result.exit_code == 2 and "unknown layer" in result.output
    result = runner.invoke(main, ["bench", "--tiny", "--device", "cpu", "--json", str(tmp_path / "no" / "b.json")])
    assert result.exit_code == 2
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    result = runner.invoke(main, ["bench", "--tiny", "--device", "cpu", "--json", str(existing)])
    assert result.exit_code == 2 and "--force" in result.output and existing.read_text() == "{}"


def test_bench_help_lists_the_cases():
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0
    for name in bench.CASES:
        assert name in result.output


def test_bench_runs_the_render_case(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--tiny", "--device", "cpu", "--cases", "render384", "--json", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "class render 384x384" in result.output and "reference (render cases)" in result.output
    (case,) = json.loads(out.read_text())["cases"]
    assert case["case"]["kind"] == "render" and case["target"] == "class banana"
    assert case["dreamer_path"]["path"] == "fast" and case["dreamer_path"]["folded_batchnorms"] > 0
    assert case["reference_ms"] > 0 and case["dreamer_ms"] > 0


def test_render_reference_is_the_render_loop_in_fp32(network):
    # like with like: with fp32 the render loop (through the backend) and the plain reference
    # (one autograd graph through the network as built) grow the same picture
    start = make_noise((48, 48), seed=0, amplitude=0.01)
    config = DreamConfig(layers=(), classes=("banana",), param="fft", transforms="standard", steps=3,
                         jitter=bench.RENDER_JITTER, learning_rate=bench.RENDER_LEARNING_RATE, precision="fp32", seed=2)
    ours = render(start, network, config)
    ref = bench.plain_render(network, "fc", 954, start, steps=3, seed=2)
    assert float((ref - start).abs().mean()) > 1e-3  # it rendered
    assert float((ref - ours).abs().max()) < 1e-4


def test_case_selection_and_sizes():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert [c.name for c in bench.select_cases(None, cpu)] == ["frame512", "render384"]
    assert [c.name for c in bench.select_cases(None, gpu)] == ["frame512", "still1080", "batch16", "still4k", "render384"]
    render_case = bench.CASES["render384"]
    assert (render_case.kind, render_case.size_hw, render_case.steps) == ("render", (384, 384), 64)
    big = bench.CASES["still4k"]
    assert (big.size_hw, big.octaves, big.steps) == ((2160, 3840), 4, 10)
    assert bench.scale_case(big, 0.25).size_hw == (540, 960)
    tiny = bench.tiny_case(bench.CASES["batch16"])
    assert max(tiny.size_hw) <= 96 and tiny.batch == 2 and tiny.steps == 2


def test_classic_reference_is_the_engine_recipe(network, image):
    # the bench compares like with like: with fp32, no extra transforms, the engine computes the
    # classic recipe step for step, so both give the same picture
    config = DreamConfig(layers=("mixed4c",), octaves=2, steps=2, jitter=8, precision="fp32", seed=4)
    sizes = plan_octaves(tuple(image.shape[-2:]), 2, config.octave_scale, network.min_size).sizes
    ours = dream(image, network, config)
    ref = bench.classic_dream(network, "inception4c", image, sizes, steps=2, jitter=8, seed=4)
    assert ref.shape == image.shape and 0 <= float(ref.min()) and float(ref.max()) <= 1
    assert float((ref - image).abs().mean()) > 1e-3  # it dreamed
    assert float((ref - ours).abs().max()) < 1e-5


def test_peak_memory_sees_a_large_allocation():
    def allocate():
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        return float(x.sum())

    peak = bench._peak_memory(allocate, torch.device("cpu"))
    if peak is None:
        pytest.skip("no /proc/self/statm here")
    assert peak >= 48 * 2**20
