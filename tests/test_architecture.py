"""The code's shape, kept: packages that name the layers, imports that point down only, no import
cycle (lazy imports included), small files.

The layers, lowest first (``docs/ARCHITECTURE.md`` draws them). A module may import its own
layer's modules and any below it; only imports under ``if TYPE_CHECKING:`` are exempt, as they
never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scaling", "jobs")

LAYERS = (
    ("foundations", ("scaling", "scaling.errors", "scaling.units", "scaling.data",
                     "scaling.results", "scaling.job")),
    ("measure", ("scaling.measure",)),
    ("engines", ("scaling.engines",)),
    ("collectives", ("scaling.collectives", "scaling.execution")),
    ("model", ("scaling.model",)),
    ("run", ("scaling.run",)),
    ("jobs", ("jobs",)),
    ("present", ("scaling.present", "jobs.*.interview")),
    ("cli", ("scaling.cli", "scaling.testing")),
)  # fmt: skip
"""Jobs sit above the runner, which knows them only by the Job contract (``scaling.job``); a
job's interview prose is presentation, read by :mod:`scaling.present.interview`."""

MAX_LINES = 500
MAX_TOP_MODULES = 10


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """Every module's imports of the project's modules, wherever in the module they are."""

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                out |= {resolve(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                for a in node.names:  # `from package import module` names the module
                    out.add(resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in known else
                            resolve(base))  # fmt: skip
        out.discard(None)
        out.discard(name)
        graph[name] = out
    return graph


def layer(module: str) -> int:
    """The rank of ``module``'s layer: its longest matching prefix's (``*``: any one name)."""
    matches = [
        (len(pattern), rank)
        for rank, (_, prefixes) in enumerate(LAYERS)
        for pattern in (prefix.split(".") for prefix in prefixes)
        if len(module.split(".")) >= len(pattern)
        and all(p in ("*", q) for p, q in zip(pattern, module.split("."), strict=False))
    ]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

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
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert cycles(imports(modules())) == []


def test_imports_point_down_the_layers():
    graph = imports(modules())
    upward = [
        f"{a} ({LAYERS[layer(a)][0]}) imports {b} ({LAYERS[layer(b)][0]})"
        for a, targets in sorted(graph.items())
        for b in sorted(targets)
        if layer(b) > layer(a)
    ]
    assert upward == []


def test_a_cycle_and_an_upward_import_are_caught():
    # The checks above are only as good as the graph: a lazy import inside a function counts,
    # one under TYPE_CHECKING does not.
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a import b\n"
        "def f():\n    from c import d\n"
    )
    skip = _type_checking_only(tree)
    ran = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and id(n) not in skip]
    assert ran == ["typing", "c"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("scaling.engines.dask") < layer("scaling.model.costmodel")
    assert layer("jobs.kmeans.interview") == layer("scaling.present.figures")


def test_files_are_small_and_the_top_level_is_short():
    long = {
        str(p.relative_to(ROOT)): n
        for p in modules().values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
    top = sorted(p.name for p in (ROOT / "scaling").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
