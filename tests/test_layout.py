"""The shape of the code: sizes, and which package may import which.

Read from the source with ``ast``, so a module that breaks a rule fails here, with the
place and the rule, rather than in a review.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "agents_mcp"
MODULE_LINES = 500
FUNCTION_LINES = 60

# Who may import whom, inside agents_mcp: each package (or top-level module) and the ones
# it may use. Dependencies flow one way: cli/server -> threads -> engine -> (llm,
# downstream, store) -> telemetry -> the vocabulary (errors, messages, structured,
# toolsets, config).
VOCABULARY = {"errors", "messages", "structured", "toolsets", "config"}
OBSERVED = VOCABULARY | {"telemetry"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "messages": set(),
    "structured": {"errors", "messages"},
    "toolsets": {"messages"},
    "config": {"errors", "structured"},
    "telemetry": VOCABULARY,
    "llm": OBSERVED,
    "store": VOCABULARY,
    "downstream": OBSERVED | {"store"},
    "engine": OBSERVED | {"llm", "store", "downstream"},
    "threads": OBSERVED | {"llm", "store", "downstream", "engine"},
    "server": OBSERVED | {"llm", "store", "downstream", "engine", "threads"},
    "cli": OBSERVED | {"llm", "store", "downstream", "engine", "threads", "server"},
    "testing": VOCABULARY | {"llm"},
}
MCP_IMPORTERS = {"server", "downstream", "testing"}
"""Only these may import mcp, mcp_types or fastmcp."""


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _unit(path: Path) -> str:
    """The package (or top-level module) a file belongs to."""
    parts = path.relative_to(SRC).parts
    return parts[0].removesuffix(".py")


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "agents_mcp":
                yield from ((node.lineno, f"agents_mcp.{a.name}") for a in node.names)
            else:
                yield node.lineno, node.module


def test_modules_and_functions_stay_small() -> None:
    too_long: list[str] = []
    for path, tree in _modules():
        where = path.relative_to(SRC.parent)
        lines = path.read_text().count("\n")
        if lines > MODULE_LINES:
            too_long.append(f"{where}: {lines} lines (at most {MODULE_LINES})")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_LINES:
                    too_long.append(
                        f"{where}:{node.lineno} {node.name}: {length} lines"
                        f" (at most {FUNCTION_LINES})"
                    )
    assert too_long == []


def test_dependencies_flow_one_way() -> None:
    wrong: list[str] = []
    for path, tree in _modules():
        unit = _unit(path)
        if unit in ("__init__", "__main__"):
            continue  # the package's lazy public surface and its entry point
        allowed = ALLOWED[unit] | {unit}
        for line, name in _imports(tree):
            top = name.split(".")[0]
            where = f"{path.relative_to(SRC.parent)}:{line}"
            if top in ("mcp", "mcp_types", "fastmcp") and unit not in MCP_IMPORTERS:
                wrong.append(f"{where} imports {name} (only {sorted(MCP_IMPORTERS)} may)")
            if top == "agents_mcp" and "." in name:
                target = name.split(".")[1]
                if target not in allowed and target != "__version__":
                    wrong.append(f"{where}: {unit} imports {name}")
    assert wrong == []


def test_every_package_is_known() -> None:
    """A new package gets a line in ALLOWED, so its place in the layers is decided."""
    units = {_unit(p) for p, _ in _modules()} - {"__init__", "__main__", "py"}
    assert units - set(ALLOWED) == set()
