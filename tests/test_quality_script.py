"""scripts/quality.py's --set: FIELD=VALUE pairs read as JSON and applied to a preset as a flag
would be (`DreamConfig.override`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from dreamer.presets import load_preset

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "quality.py"


def _script():
    spec = importlib.util.spec_from_file_location("quality_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_set_pairs_are_json_and_resolve_like_flags():
    q = _script()
    changes = q._changes(["views=2", "crop=[0.5, 1.5]", "backdrop=none", "opacity_cost=0"])
    assert changes == {"views": 2, "crop": [0.5, 1.5], "backdrop": "none", "opacity_cost": 0}
    with pytest.raises(SystemExit):
        q._changes(["views"])
    with pytest.raises(SystemExit):
        q._changes(["=2"])
    # turning parachute's opacity off drops its backdrop and far views, as --opacity 0 does
    plain = load_preset("parachute").config.override(**q._changes(["opacity_cost=0"]))
    assert plain.opacity_cost == 0 and plain.backdrop == () and plain.crop[1] <= 1.0
