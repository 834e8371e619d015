"""The layout's rules, checked on the source: what each folder may import, no import cycles,
and hardware kinds decided only behind the backend seam (docs/architecture.md).

Read from the AST, so lazy imports inside functions count too (only `if TYPE_CHECKING:`
blocks are left out: they never run).
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("planner", "cluster", "ui")
HEAVY = {"torch", "ray", "jax", "jaxlib", "streamlit", "pynvml", "rich", "ortools", "altair", "pandas"}
# What each folder of planner/ may import from outside the standard library and the pure deps.
FORBIDDEN = {
    "planner/core": HEAVY | {"planner.profiling", "planner.planning", "planner.backends", "planner.deployment",
                             "planner.reports", "planner.models", "planner.api", "planner.cli", "planner.demo",
                             "cluster", "ui"},
    "planner/planning": HEAVY - {"ortools"} | {"planner.profiling", "planner.backends", "planner.deployment",
                                               "planner.reports", "planner.models", "planner.api", "planner.cli",
                                               "planner.demo", "cluster", "ui"},
    "planner/deployment": HEAVY | {"planner.profiling", "planner.planning", "planner.backends", "planner.reports",
                                   "planner.models", "planner.api", "planner.cli", "planner.demo", "cluster", "ui"},
    "planner/reports": HEAVY - {"rich"} | {"planner.profiling", "planner.backends", "planner.models",
                                           "planner.api", "planner.cli", "planner.demo", "cluster", "ui"},
    "planner/profiling": {"ray", "streamlit", "ortools", "planner.planning", "planner.deployment",
                          "planner.reports", "planner.api", "planner.cli", "planner.demo", "cluster", "ui"},
    "planner/backends": {"ray", "streamlit", "ortools", "planner.planning", "planner.deployment",
                         "planner.reports", "planner.api", "planner.cli", "planner.demo", "cluster", "ui"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module the file imports, at any depth, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from planner import api` imports planner.api
    return found


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_each_folder_imports_only_what_its_layer_may():
    broken = []
    for module, path in _sources().items():
        folder = str(path.parent.relative_to(REPO))
        rule = next((FORBIDDEN[f] for f in FORBIDDEN if folder == f or folder.startswith(f + "/")), None)
        if rule is None:
            continue
        for imported in _imports(path):
            for prefix in rule:
                if _matches(imported, prefix):
                    broken.append(f"{module} imports {imported}")
    assert not sorted(set(broken)), "\n".join(sorted(set(broken)))


def test_no_import_cycles_between_modules():
    sources = _sources()
    graph = {m: {i for i in _imports(p) if i in sources and i != m} for m, p in sources.items()}
    # Importing a package's module does not import its siblings; a package's own __init__ is not an edge back.
    graph = {m: {i for i in deps if not _matches(m, i)} for m, deps in graph.items()}
    cycles, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)


KIND_STRINGS = {"cpu", "gpu", "tpu"}


def _kind_branches(path: Path) -> list[str]:
    """Comparisons of something named `kind` with a hardware kind string ("cpu", "gpu", "tpu")."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        names = {ast.unparse(s) for s in sides}
        strings = {c.value for s in sides for c in ast.walk(s) if isinstance(c, ast.Constant)
                   and isinstance(c.value, str)}
        if strings & KIND_STRINGS and any(n == "kind" or n.endswith(".kind") for n in names):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_hardware_kinds_are_decided_only_behind_the_backend_seam():
    # The catalog defines the kinds (and validates its entries by them); backends and cluster/ act on them.
    allowed = ("planner/backends/", "cluster/", "planner/core/catalog.py")
    found = [hit for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))
             if not str(p.relative_to(REPO)).startswith(allowed) for hit in _kind_branches(p)]
    assert not found, "\n".join(found)


def test_the_api_functions_are_not_shadowed_by_submodules():
    import importlib
    import pkgutil

    import planner
    from planner import api

    for info in pkgutil.walk_packages(planner.__path__, "planner."):
        if info.name.endswith("__main__") or info.name.startswith("planner.backends.jax"):
            continue
        importlib.import_module(info.name)
    for name in ("profile", "plan", "deploy", "verify", "report", "schedule"):
        assert getattr(planner, name) is getattr(api, name), name
