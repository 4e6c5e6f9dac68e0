# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sandbox stays readable: no Python file over 800 lines, and its package's modules import one another in one order."""

from __future__ import annotations

import ast
from pathlib import Path

import xoauth2_sandbox

SANDBOX_DIR = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(xoauth2_sandbox.__file__).resolve().parent
MAX_LINES = 800


def package_imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, at any depth of the file (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xoauth2_sandbox."):
            found.add(node.module.split(".")[1])
    return found


def test_no_python_file_of_the_sandbox_is_over_800_lines() -> None:
    sizes = {str(path.relative_to(SANDBOX_DIR)): len(path.read_text(encoding="utf-8").splitlines())
             for path in SANDBOX_DIR.rglob("*.py")}
    assert "xoauth2_sandbox/sandbox.py" in sizes
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def test_the_package_has_no_import_cycle() -> None:
    graph = {path.stem: package_imports(path) for path in PACKAGE_DIR.glob("*.py") if path.stem not in ("__init__", "__main__")}
    assert graph["cli"] and graph["sandbox"]  # the walk sees the imports
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, f"import cycle: {' -> '.join((*trail, module))}"
        if module not in done:
            for imported in sorted(graph[module]):
                visit(imported, (*trail, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())
