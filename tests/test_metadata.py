"""What outputs record about how they were made, read back with `read_metadata` (a dict)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dreamer.config import DreamConfig
from dreamer.io.images import read_metadata
from dreamer.io.metadata import METADATA_KEY, build_metadata, merge_record, parse_metadata


@pytest.fixture
def loads(monkeypatch, network):
    monkeypatch.setattr("dreamer.models.load_model", lambda *a, **k: network)


def test_read_metadata_gives_the_settings_as_a_dict_with_preset_and_octaves_used(tmp_path, loads):
    """Issue #11: the record was a JSON string inside a dict, without the preset or the octaves run."""
    from dreamer.cli import main

    photo = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["run", str(photo), "--preset", "low-level", "--octaves", "4", "--steps", "1",
                                       "--weights", "random", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert isinstance(meta["config"], dict) and meta["config"]["octaves"] == 4
    assert meta["preset"] == "low-level"
    assert 1 <= meta["octaves_used"] < 4  # 48 px high: not all four octaves fit above 32 px
    assert meta["weights"] == "random:0" and isinstance(meta["seed"], int)
    assert meta["Software"].startswith("dreamer ")
    assert parse_metadata(meta) == meta  # old callers' parse_metadata(read_metadata(p)) still works


def test_zoom_frames_record_preset_and_octaves(tmp_path, network, monkeypatch):
    from dreamer.cli import main
    import dreamer.cli.zoom as zoom_cli

    monkeypatch.setattr(zoom_cli, "open_network", lambda *a, **k: network)
    out = tmp_path / "frames"
    result = CliRunner().invoke(main, ["zoom", "noise:48x48", "--frames", "2", "--preset", "low-level", "--steps", "1",
                                       "--weights", "random", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    meta = read_metadata(out / "frame_000001.png")
    assert meta["preset"] == "low-level" and meta["octaves_used"] == 1 and meta["frame"] == 1
    assert isinstance(meta["config"], dict)
    assert read_metadata(out / "frame_000000.png")["octaves_used"] is None  # the source: no dream


def test_records_round_trip_and_foreign_chunks_stay_text():
    chunks = build_metadata(DreamConfig(octaves=3), model="googlenet", weights="random:0", device="cpu",
                            source="x.png", preset="high-level", octaves_used=2)
    record = json.loads(chunks[METADATA_KEY])
    assert record["preset"] == "high-level" and record["octaves_used"] == 2
    merged = merge_record(chunks)
    assert merged["config"]["octaves"] == 3 and "Software" in merged and METADATA_KEY not in merged
    assert merge_record({"Title": "holiday"}) == {"Title": "holiday"}
    assert merge_record({METADATA_KEY: "not json"}) == {METADATA_KEY: "not json"}
    assert parse_metadata({"Title": "holiday"}) == {}
