# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shape of the code, read from the sources with ``ast``: short functions, files of a readable size, no import
cycle among the collection's modules, and no collection code imported inside a function.
"""

from __future__ import annotations

import ast
import os
import typing as t
from pathlib import Path

import pytest

COLLECTION_ROOT = Path(__file__).resolve().parents[3]
PLUGINS = COLLECTION_ROOT / "plugins"
PACKAGE = "ansible_collections.smail.xoauth2"
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 800


def _sandbox_dir() -> Path | None:
    """The sandbox sources (no collection content: absent from the built copy unless the Makefile names them)."""
    named = os.environ.get("SMAIL_XOAUTH2_SANDBOX_DIR")
    path = Path(named) if named else COLLECTION_ROOT / "sandbox"
    return path if path.is_dir() else None


def _sources(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_name(path: Path) -> str:
    """The import name of a file of plugins/, ``ansible_collections.smail.xoauth2.plugins.…``."""
    parts = list(path.relative_to(COLLECTION_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


PLUGIN_FILES = _sources(PLUGINS)
MODULES = {_module_name(path): path for path in PLUGIN_FILES}


def _relative(path: Path) -> str:
    """``path`` as the checkout names it: ``plugins/…`` or ``sandbox/…``."""
    sandbox = _sandbox_dir()
    if sandbox and path.is_relative_to(sandbox):
        return str(path.relative_to(sandbox.parent))
    return str(path.relative_to(COLLECTION_ROOT))


# functions


def function_lengths(tree: ast.Module) -> t.Iterator[tuple[str, int, int]]:
    """Each function or method (nested ones too) as (qualified name, first line, lines), counted from its first
    decorator or ``def`` line to its last line, docstring included."""

    def visit(node: ast.AST, prefix: str) -> t.Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno, *(decorator.lineno for decorator in child.decorator_list)])
                name = f"{prefix}{child.name}"
                yield name, first, t.cast(int, child.end_lineno) - first + 1
                yield from visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")
            else:
                yield from visit(child, prefix)

    return visit(tree, "")


def test_function_lengths_are_counted_from_the_first_decorator_to_the_last_line():
    tree = ast.parse("@decorator\n@other(\n  1)\ndef one():\n    '''Doc.'''\n    return 1\n\n\n"
                     "class Kind:\n    def two(self):\n        def three():\n            pass\n        return three\n")
    assert list(function_lengths(tree)) == [("one", 1, 6), ("Kind.two", 10, 4), ("Kind.two.three", 11, 2)]


def test_no_function_in_plugins_is_longer_than_60_lines():
    long = [f"{_relative(path)}:{line} {name} ({lines} lines)"
            for path in PLUGIN_FILES for name, line, lines in function_lengths(_parse(path)) if lines > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {'; '.join(long)}"


# files


def test_no_python_file_in_plugins_or_the_sandbox_is_longer_than_800_lines():
    sandbox = _sandbox_dir()
    files = PLUGIN_FILES + (_sources(sandbox) if sandbox else [])
    long = []
    for path in files:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            long.append(f"{_relative(path)} ({lines} lines)")
    assert not long, f"files over {MAX_FILE_LINES} lines: {'; '.join(long)}"


# imports


def _resolve(node: ast.ImportFrom, importer: str) -> str:
    """The absolute module name of a ``from … import`` (relative ones resolved against ``importer``)."""
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def collection_imports(tree: ast.Module, importer: str) -> t.Iterator[tuple[ast.stmt, str]]:
    """Every import of collection code in ``tree``, wherever it stands, as (statement, imported module).

    ``from X import name`` imports X, and X.name too when that is a module.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(f"{PACKAGE}."):
                    yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, importer)
            if not module.startswith(f"{PACKAGE}."):
                continue
            yield node, module
            for alias in node.names:
                if f"{module}.{alias.name}" in MODULES:
                    yield node, f"{module}.{alias.name}"


def import_graph() -> dict[str, set[str]]:
    """Each module of plugins/ -> the modules of plugins/ it imports (top-level, in functions, under TYPE_CHECKING)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        graph[name] = {imported for _node, imported in collection_imports(_parse(path), name)
                       if imported in MODULES and imported != name}
    return graph


def find_cycles(graph: t.Mapping[str, t.Iterable[str]]) -> list[list[str]]:
    """One cycle (its modules, the first repeated at the end) for each strongly connected part that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    parts: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            part = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.add(member)
                if member == node:
                    break
            if len(part) > 1 or node in graph.get(node, ()):
                parts.append(part)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_within(part, graph) for part in parts]


def _cycle_within(part: set[str], graph: t.Mapping[str, t.Iterable[str]]) -> list[str]:
    """The shortest path from the part's first module back to itself, inside the part."""
    start = min(part)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph.get(node, ())):
            if target == start:
                return [*paths[node], start]
            if target in part and target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"no cycle within {sorted(part)}")  # a strongly connected part always has one


def test_find_cycles_finds_a_cycle_through_three_modules_and_none_in_a_tree():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_import_graph_counts_imports_in_functions_and_under_type_checking():
    graph = import_graph()
    assert f"{PACKAGE}.plugins.module_utils._errors" in graph[f"{PACKAGE}.plugins.callback.notify"]
    tree = ast.parse("import typing as t\nif t.TYPE_CHECKING:\n    from ansible_collections.smail.xoauth2.plugins"
                     ".module_utils._smtp import message\ndef f():\n    import ansible_collections.smail.xoauth2.plugins"
                     ".module_utils._errors\n")
    imported = {name for _node, name in collection_imports(tree, f"{PACKAGE}.plugins.module_utils._summary")}
    assert imported == {f"{PACKAGE}.plugins.module_utils._smtp", f"{PACKAGE}.plugins.module_utils._smtp.message",
                        f"{PACKAGE}.plugins.module_utils._errors"}


def test_no_import_cycle_among_the_collection_modules():
    cycles = [" -> ".join(name.removeprefix(f"{PACKAGE}.plugins.") for name in cycle)
              for cycle in find_cycles(import_graph())]
    assert not cycles, f"import cycles: {'; '.join(cycles)}"


def _functions_holding(tree: ast.Module) -> dict[ast.AST, str]:
    """Each statement inside a function body -> the function's qualified name."""
    holder: dict[ast.AST, str] = {}

    def visit(node: ast.AST, prefix: str, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                inner = name if not isinstance(child, ast.ClassDef) else function
                visit(child, f"{name}.", inner)
            else:
                if function is not None:
                    holder[child] = function
                visit(child, prefix, function)

    visit(tree, "", None)
    return holder


def _package(module: str) -> str | None:
    """The core package a module lives in (``module_utils._ini`` for ``module_utils._ini.engine``), or None."""
    parts = module.removeprefix(f"{PACKAGE}.plugins.").split(".")
    if len(parts) >= 2 and parts[0] in ("module_utils", "plugin_utils") and (PLUGINS / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return None


def _imports_http_libraries(module: str) -> bool:
    """Whether a module of plugins/ imports google-auth or requests (anywhere in it)."""
    path = MODULES.get(module)
    if path is None:
        return False
    for node in ast.walk(_parse(path)):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(name.split(".")[0] in ("google", "requests") for name in names):
            return True
    return False


def _explained_boundary(source: str, importer: str, module: str) -> bool:
    """A lazy import across a boundary, with a comment in the importing file that names what it imports: another core
    package, or the module of a package that imports google-auth or requests."""
    package = _package(module)
    if package is not None and package != _package(importer):
        name = package.rsplit(".", maxsplit=1)[-1]
    elif _imports_http_libraries(module):
        name = "/".join(module.split(".")[-2:]) + ".py"
    else:
        return False
    return any(line.lstrip().startswith("#") and name in line for line in source.splitlines())


def test_a_lazy_import_is_allowed_only_across_a_package_boundary_with_its_reason():
    source = "# The _ini package loads only with a token INI.\n"
    core = f"{PACKAGE}.plugins.module_utils"
    assert _explained_boundary(source, f"{core}._send.credentials", f"{core}._ini.engine")
    assert _explained_boundary(source, f"{core}._send.credentials", f"{core}._ini")
    assert not _explained_boundary("", f"{core}._send.credentials", f"{core}._ini.engine")
    assert not _explained_boundary(source, f"{core}._ini.rotation", f"{core}._ini.engine")
    assert not _explained_boundary(source, f"{core}._send.credentials", f"{core}._errors")
    endpoint = "# The token endpoint's client, _oauth2/endpoint.py, brings google-auth.\n"
    assert _explained_boundary(endpoint, f"{core}._oauth2.tokens", f"{core}._oauth2.endpoint")
    assert not _explained_boundary("", f"{core}._oauth2.tokens", f"{core}._oauth2.endpoint")
    assert not _explained_boundary(endpoint, f"{core}._oauth2.tokens", f"{core}._oauth2.cache")


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=_relative)
def test_no_collection_code_is_imported_inside_a_function(path):
    """Collection code is imported with the rest, failure code included; the one exception is another core package
    that a common path never needs, imported where it is needed, with a comment in the file that names the package and
    says what that saves."""
    tree = _parse(path)
    source = path.read_text(encoding="utf-8")
    importer = _module_name(path)
    holder = _functions_holding(tree)
    lazy: dict[ast.AST, list[str]] = {}
    for node, module in collection_imports(tree, importer):
        if node in holder and not _explained_boundary(source, importer, module):
            lazy.setdefault(node, []).append(module)
    found = [f"{_relative(path)}:{node.lineno} in {holder[node]}: {', '.join(modules)}" for node, modules in lazy.items()]
    assert not found, f"collection code imported inside a function: {'; '.join(found)}"
