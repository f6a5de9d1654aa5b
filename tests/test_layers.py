"""The package's import graph: layers import only downward, and there is no import cycle.

The graph is read from the source (every ``import``/``from ... import`` of a ``mialab`` module,
at module level or inside a function; only ``if TYPE_CHECKING:`` blocks are left out, since they
never run), so an import hidden inside a function to dodge a cycle counts as much as one at the
top of a file. The layers, bottom to top (STYLE.md, issue 13):

0. records: ``_version``, ``types``, ``seeding``, ``validation``
1. ``data``, ``metrics`` (pure numpy: the statistical verdicts and the privacy gate live here), ``models``
2. ``training``
3. ``attacks``, ``defenses``
4. ``fleet``, ``model_files``, ``config``, ``results``
5. the pipeline: ``pipeline.*`` (threat model, composition, attack runner, provenance, own model)
6. ``comparison``
7. ``report``: renders a results document; it depends on ``results`` and what lies below it only
8. the facade that writes run directories: ``api``, ``cli``, ``__main__``, and the package itself
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "mialab"

LAYERS: list[tuple[str, ...]] = [
    ("mialab._version", "mialab.types", "mialab.seeding", "mialab.validation"),
    ("mialab.data", "mialab.metrics", "mialab.models"),
    ("mialab.training",),
    ("mialab.attacks", "mialab.defenses"),
    ("mialab.fleet", "mialab.model_files", "mialab.config", "mialab.results"),
    ("mialab.pipeline",),
    ("mialab.comparison",),
    ("mialab.report",),
    ("mialab.api", "mialab.cli", "mialab.__main__", "mialab"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of ``module``: that of the longest listed prefix."""
    best, rank = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, rank = len(name), i
    if rank is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return rank


def imports(module: str) -> set[str]:
    """The mialab modules ``module`` imports (a ``from pkg import name`` of a submodule counts as
    that submodule), leaving out ``if TYPE_CHECKING:`` blocks."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "mialab")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mialab":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found.update(subs)
            if len(subs) < len(node.names):  # names defined by the module itself
                found.add(target)
    found.discard(module)
    return {m for m in found if m in MODULES}


GRAPH = {m: imports(m) for m in MODULES}


def test_the_graph_sees_the_package():
    # a reader that found nothing would pass every check below
    assert len(MODULES) > 40 and sum(map(len, GRAPH.values())) > 100
    assert "mialab.pipeline.compose" in GRAPH["mialab.api"]
    assert "mialab.metrics.family" in GRAPH["mialab.metrics.verdict"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    """No module imports a module of a higher layer."""
    up = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert up == [], f"{module} (layer {layer(module)}) imports upward: " + \
        ", ".join(f"{t} (layer {layer(t)})" for t in up)


def test_no_import_cycle():
    """Depth-first search over the whole graph (within a layer too)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(GRAPH[m]):
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_report_depends_on_results_only():
    """``report`` renders a results document: apart from itself, it reads ``results`` and the
    records and metrics below it, never the pipeline, training or attacks."""
    allowed = ("mialab.report", "mialab.results", "mialab.metrics", "mialab.types", "mialab.validation",
               "mialab._version")
    for module in (m for m in MODULES if m.startswith("mialab.report")):
        bad = sorted(t for t in GRAPH[module] if not any(t == a or t.startswith(a + ".") for a in allowed))
        assert bad == [], f"{module} imports {bad}"


def test_only_the_facade_writes_run_directories():
    """The pipeline and the comparison return results; writing a run directory (the ``out=``
    path) is the facade's (``mialab.api``) and the CLI's."""
    for module in MODULES:
        if layer(module) < layer("mialab.report"):
            assert not any(t.startswith("mialab.report") for t in GRAPH[module]), module


def test_a_planted_upward_import_and_cycle_are_caught(tmp_path, monkeypatch):
    """The checks above can fail: a metrics module importing the pipeline is an upward import,
    and two modules importing each other are a cycle."""
    assert layer("mialab.metrics.roc") < layer("mialab.pipeline.compose")
    fake = dict(GRAPH)
    fake["mialab.metrics.roc"] = GRAPH["mialab.metrics.roc"] | {"mialab.pipeline.compose"}
    up = [t for t in fake["mialab.metrics.roc"] if layer(t) > layer("mialab.metrics.roc")]
    assert up == ["mialab.pipeline.compose"]
    monkeypatch.setitem(GRAPH, "mialab.types", GRAPH["mialab.types"] | {"mialab.seeding"})
    monkeypatch.setitem(GRAPH, "mialab.seeding", GRAPH["mialab.seeding"] | {"mialab.types"})
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycle()
