"""The layering rules of docs/architecture.md, checked on the source: no import cycles among
ratpose's modules, and nothing outside the database shell imports datajoint."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ratpose"
# Modules that may talk to the database: the tables themselves, and the shells above them.
# ratpose.db holds the connection settings; ratpose.cli is the command line, a module per stage.
DATABASE_SHELL = ("ratpose.schema", "ratpose.db", "ratpose.cli", "ratpose.demo", "ratpose.query")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    """Import nodes under ``if TYPE_CHECKING:`` (never executed, so never part of a cycle)."""
    return {node for block in ast.walk(tree)
            if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
            for statement in block.body for node in ast.walk(statement)}


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every ratpose module (or outside top-level package) that ``path`` imports at run time, at any
    depth in the file (function-level imports included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    found = set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import module` needs that module; `from module import name` the module itself
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(base)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: _imports(path, modules) for name, path in paths.items()}


def _in(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_import_cycles():
    graph = _graph()
    edges = {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_only_the_database_shell_imports_datajoint():
    graph = _graph()
    offenders = sorted(m for m, targets in graph.items()
                       if not _in(m, DATABASE_SHELL)
                       and any(_in(t, ("datajoint", "ratpose.schema")) for t in targets))
    assert not offenders, f"modules below schema/ that import datajoint or the tables: {offenders}"


def test_the_checks_see_the_package():
    graph = _graph()
    assert {"ratpose.pose2d.dlc", "ratpose.pose3d.triangulation", "ratpose.behaviour.knob",
            "ratpose.query"} <= set(graph)
    assert "ratpose.behaviour.kinematics" in graph["ratpose.behaviour.knob"]
