"""The package's shape: layers that import only downwards, no import circles (lazy imports
inside functions included), small modules, few of them at the top."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "hetkv_opt"

#: the layers, lowest first; a module may import from its own layer and the ones below
LAYERS = ["deadline", "cluster", "model", "result", "io", "presets", "milp", "bounds", "policies", "methods", "solve",
          "trace", "workloads", "testing", "bench", "cli", "__init__", "__main__"]


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``path`` imports anywhere (top level or in a function;
    docstrings are not code and are not read)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            if n in modules and n.startswith("hetkv_opt"):
                found.add(n)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(f, mods) - {m} for m, f in mods.items()}


def _layer(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS.index(key)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    # the check above must be able to fail
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_layer_imports_only_downwards():
    bad = [(m, d) for m, deps in _graph().items() for d in deps
           if _layer(d) > _layer(m)]
    assert bad == [], "imports that run upwards: " + ", ".join(f"{m} -> {d}" for m, d in bad)


def test_every_module_is_in_a_layer():
    for m in _modules():
        _layer(m)    # raises ValueError for a module outside every layer


def test_modules_are_small_and_few_at_the_top():
    sizes = {m: len(f.read_text(encoding="utf-8").splitlines()) for m, f in _modules().items()}
    big = {m: n for m, n in sizes.items() if n > 800}
    assert big == {}
    top = [f for f in PKG.glob("*.py")]
    assert len(top) <= 12, sorted(p.name for p in top)


def test_nothing_imports_solve_back():
    users = sorted(m for m, deps in _graph().items() if "hetkv_opt.solve" in deps)
    assert all(_layer(m) > _layer("hetkv_opt.solve") for m in users), users
