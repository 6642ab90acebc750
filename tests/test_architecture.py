"""The tree shows the flow, and the code keeps to it.

Walks the ``ast`` of every module under ``digest/`` (imports inside functions and under
``TYPE_CHECKING`` included) and checks:

- no import cycle between modules;
- every module imports only the packages its stage's docstring allows ("May import: ...");
- every module has a docstring and at most 300 lines; every package says what it may import;
- at most ten modules sit directly in ``digest/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "digest"
MAX_LINES = 300


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.relative_to(ROOT).parts:
            continue  # Alembic's env.py and generated revisions are loaded by Alembic, not us
        found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The digest module an imported name refers to (a submodule if it is one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule; `from mod import name`, the module.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        else:
            continue
        for name in names:
            if name == "digest" or name.startswith("digest."):
                target = _resolve(name)
                if target is not None:
                    found.add(target)
    return found


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _unit(module: str) -> str:
    """The stage a module belongs to: its package under digest/, or itself at the top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "digest"


def _allowed(unit: str) -> set[str] | None:
    """What the unit's docstring allows; None for 'every package'."""
    doc = ast.get_docstring(ast.parse(MODULES[f"digest.{unit}"].read_text(encoding="utf-8")))
    match = re.search(r"May import:\s*(.+?)(?:\.\s*$|\.\s*\n|\(|$)", doc or "", re.S)
    assert match, f"digest.{unit}: its docstring must say 'May import: ...'"
    said = " ".join(match[1].split())
    if said.startswith("every package"):
        return None
    if said.startswith("nothing"):
        return set()
    return {word.strip() for word in said.split(",")}


UNITS = sorted({_unit(m) for m in MODULES} - {"digest"})


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target):], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("unit", UNITS)
def test_each_stage_imports_only_what_its_docstring_allows(unit: str) -> None:
    allowed = _allowed(unit)
    bad = []
    for module, targets in GRAPH.items():
        if _unit(module) != unit or allowed is None:
            continue
        for target in targets:
            other = _unit(target)
            if target != "digest" and other != unit and other not in allowed:
                bad.append(f"{module} imports {target}")
    assert not bad, f"digest.{unit} may import only {sorted(allowed or ())}: {bad}"


def test_the_checker_sees_imports_inside_functions_and_type_checking() -> None:
    # The walker must not be fooled by lazy imports (they were how cycles hid before).
    assert "digest.web" in GRAPH["digest.cli.serve"]  # imported inside the command
    assert "digest.run.report" in GRAPH["digest.cli.sending"]
    assert _allowed("transport") == {"config"}


def test_modules_are_small_and_documented() -> None:
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES})"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{module} has no docstring"


def test_few_modules_at_the_top() -> None:
    top = [p.name for p in ROOT.glob("*.py")]
    assert len(top) <= 10, top
