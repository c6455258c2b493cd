"""The package layout, tested against the code: imports (function-level ones too) flow one way,
cli -> zoom/video/visualize -> loops -> backend -> models/objectives/transforms, with no cycles,
and the two loops never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import dreamer

ROOT = Path(dreamer.__file__).parent

#: where each top-level module or package of dreamer/ sits: a module may import its own rank or
#: lower ones, never a higher one. Anything not listed counts as APPLICATION.
BOTTOM, BACKEND, LOOPS, APPLICATION, CLI = range(5)
RANKS = {
    **dict.fromkeys(
        ("errors", "config", "classes", "devices", "targets", "objectives", "transforms", "models", "presets", "colors"),
        BOTTOM,
    ),
    "backend": BACKEND,
    "loops": LOOPS,
    **dict.fromkeys(("zoom", "video", "visualize", "io", "api", "bench", "scale", "steer", "masks"), APPLICATION),
    "cli": CLI,
    "__main__": CLI,
}


def _modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the dreamer modules it imports anywhere in its text (functions included).

    `from .pkg import name` counts as importing `pkg` and, when `name` is a module, `pkg.name`.
    A package's __init__ importing its own submodules (re-exports, command registration) is
    not counted: it is how a package presents itself, not a dependency of design."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name not in modules or name == module:
                    continue
                if is_package and name.startswith(module + "."):
                    continue
                graph[module].add(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a list of modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        for target in targets:
            src, dst = _group(module), _group(target)
            if not dst or src == dst:  # dreamer/__init__ (lazy exports), or within one group
                continue
            if RANKS.get(src, APPLICATION) < RANKS.get(dst, APPLICATION):
                bad.append(f"{module} imports {target}")
    return sorted(bad)


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_flow_one_way():
    assert layer_violations(import_graph()) == []


def test_the_loops_never_import_each_other():
    graph = import_graph()
    assert "dreamer.loops.render" not in graph["dreamer.loops.deepdream"]
    assert "dreamer.loops.deepdream" not in graph["dreamer.loops.render"]
    # and the backend knows nothing of either
    assert not any(t.startswith("dreamer.loops") for m, ts in graph.items() if m.startswith("dreamer.backend") for t in ts)


def test_the_checks_can_fail(tmp_path):
    # a cycle hidden in a function and an upward import are both caught
    pkg = tmp_path / "dreamer"
    (pkg / "backend").mkdir(parents=True)
    (pkg / "loops").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "backend" / "__init__.py").write_text("")
    (pkg / "loops" / "__init__.py").write_text("")
    (pkg / "backend" / "a.py").write_text("def f():\n    from ..loops import b\n")
    (pkg / "loops" / "b.py").write_text("from ..backend import a\n")
    graph = import_graph(pkg)
    assert graph["dreamer.backend.a"] == {"dreamer.loops", "dreamer.loops.b"}
    assert find_cycle(graph) in (
        ["dreamer.backend.a", "dreamer.loops.b", "dreamer.backend.a"],
        ["dreamer.loops.b", "dreamer.backend.a", "dreamer.loops.b"],
    )
    assert layer_violations(graph) == ["dreamer.backend.a imports dreamer.loops", "dreamer.backend.a imports dreamer.loops.b"]


def _module_state(path: Path) -> list[str]:
    """Names bound at module level to a mutable container that is not a public constant
    (UPPER_CASE without a leading underscore): state that would outlive a call, such as a cache
    keyed on networks."""
    mutable = {"dict", "list", "set", "OrderedDict", "WeakKeyDictionary", "WeakValueDictionary", "defaultdict"}
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        is_call = isinstance(value, ast.Call) and getattr(value.func, "attr", getattr(value.func, "id", "")) in mutable
        if is_call or isinstance(value, (ast.Dict, ast.List, ast.Set)):
            names = [t.id for t in targets if isinstance(t, ast.Name) and t.id != "__all__"]
            found += [n for n in names if n.startswith("_") or not n.isupper()]
    return found


def test_no_module_level_state_in_the_backend_and_loops(tmp_path):
    # what the backend learns lives in the PreparedNetwork the caller holds
    for folder in ("backend", "loops"):
        for path in (ROOT / folder).glob("*.py"):
            assert _module_state(path) == [], path
    old = tmp_path / "fast.py"  # the shape of the caches this replaced
    old.write_text("import weakref\n_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()\nLIMIT = {}\n")
    assert _module_state(old) == ["_FORWARDS"]
