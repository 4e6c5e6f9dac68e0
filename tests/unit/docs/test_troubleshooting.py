# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""docs/troubleshooting.md lists every ``error`` code the collection raises, as its code says them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

COLLECTION_ROOT = Path(__file__).resolve().parents[3]
PLUGINS = COLLECTION_ROOT / "plugins"
DOC = COLLECTION_ROOT / "docs" / "troubleshooting.md"
CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _codes_of(node: ast.AST | None, assignments: dict[str, list[ast.AST]]) -> set[str]:
    """The code strings ``node`` can be: a literal, or the literals of what a local name was assigned."""
    if node is None:
        return set()
    if isinstance(node, ast.Name):
        return set().union(*(_codes_of(value, {}) for value in assignments.get(node.id, [])))
    return {sub.value for sub in ast.walk(node)
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and CODE.match(sub.value)}


def _error_classes(trees: list[ast.Module]) -> set[str]:
    """SmailError and every class derived from it, across files."""
    known = {"SmailError"}
    grew = True
    while grew:
        grew = False
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in known and any(
                        (base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)) in known
                        for base in node.bases):
                    known.add(node.name)
                    grew = True
    return known


def _fixed_code_classes(trees: list[ast.Module], errors: set[str]) -> set[str]:
    """Error classes whose first argument is not the code (OptionError's is an option): they pass their own code up."""
    fixed = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in errors:
                for init in (item for item in node.body if isinstance(item, ast.FunctionDef) and item.name == "__init__"):
                    parameters = [argument.arg for argument in init.args.args[1:]]
                    if parameters[:1] != ["code"]:
                        fixed.add(node.name)
    return fixed - {"SmailError"}


def raised_codes() -> dict[str, set[str]]:
    """Each code of the plugins, with the files that raise it."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in PLUGINS.rglob("*.py")}
    errors = _error_classes(list(trees.values()))
    not_a_code_argument = _fixed_code_classes(list(trees.values()), errors)
    found: dict[str, set[str]] = {}
    for path, tree in trees.items():
        where = str(path.relative_to(COLLECTION_ROOT))
        for scope in [tree, *(node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef)))]:
            assignments: dict[str, list[ast.AST]] = {}
            for node in ast.walk(scope):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            assignments.setdefault(target.id, []).append(node.value)
            for node in ast.walk(scope):
                codes: set[str] = set()
                if isinstance(node, ast.Call):
                    name = _called_name(node)
                    in_error_class = isinstance(scope, ast.ClassDef) and scope.name in errors
                    if (name in errors and name not in not_a_code_argument) or (name == "__init__" and in_error_class):
                        first = node.args[0] if node.args else next((kw.value for kw in node.keywords if kw.arg == "code"), None)
                        codes = _codes_of(first, assignments)
                # An OAuth endpoint's error answers that have a hint are kept as the task's code.
                elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                        isinstance(target, ast.Name) and target.id.endswith("_HINTS") for target in node.targets):
                    codes = _codes_of(ast.Tuple(elts=[key for key in node.value.keys if key is not None]), {})
                for code in codes:
                    found.setdefault(code, set()).add(where)
    return found


def documented_codes() -> set[str]:
    """The codes in the first column of the doc's tables, as `code` (several may share a row)."""
    rows = [line.split("|")[1] for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    return {code for row in rows for code in re.findall(r"`([a-z0-9_]+)`", row)}


def test_the_collector_finds_the_codes_it_should():
    codes = raised_codes()
    # Literal codes, codes through a name, through super().__init__, and an endpoint's hinted error answers.
    for code in ("smtp_auth", "spool_write", "token_endpoint_error", "invalid_option", "missing_library",
                 "invalid_grant", "redirect_uri_mismatch", "delivery_unknown", "token_endpoint_unreachable"):
        assert code in codes, code
    assert "client_id" not in codes  # an OptionError's option, not a code
    assert "requests" not in codes  # MissingLibraryError's library


def test_every_code_is_in_troubleshooting():
    missing = {code: sorted(files) for code, files in raised_codes().items() if code not in documented_codes()}
    assert missing == {}, f"add these codes to {DOC.name}: {missing}"
