# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One registry of ``error`` codes (``_errors.CODES``): the code raises only registered codes, docs/troubleshooting.md
documents exactly the registry, and each module's RETURN ``error`` names registered codes and the troubleshooting page."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import CODES

COLLECTION_ROOT = Path(__file__).resolve().parents[3]
PLUGINS = COLLECTION_ROOT / "plugins"
DOC = COLLECTION_ROOT / "docs" / "troubleshooting.md"
CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
#: The page every module's RETURN ``error`` names: the rule is "name it", not "list every code the module can return".
DOC_REFERENCE = "C(docs/troubleshooting.md)"
#: Modules that return no ``error`` code, and why.
NO_ERROR_CODE = {"slurp_stat": "an internal helper of the INI actions; its failure is reported by them as read_failed"}


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


@functools.cache
def raised_codes() -> dict[str, set[str]]:
    """Each code of the plugins, with the files that raise it (the plugins parsed once for every test: read only)."""
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
                    # A code given by keyword: a provider's ReplyHint(code=...), a result's error=...
                    codes = set().union(*(_codes_of(kw.value, {}) for kw in node.keywords
                                          if kw.arg in ("code", "error") and isinstance(kw.value, ast.Constant)))
                    in_error_class = isinstance(scope, ast.ClassDef) and scope.name in errors
                    if (name in errors and name not in not_a_code_argument) or (name == "__init__" and in_error_class):
                        first = node.args[0] if node.args else next((kw.value for kw in node.keywords if kw.arg == "code"), None)
                        codes |= _codes_of(first, assignments)
                # An OAuth endpoint's error answers that have a hint are kept as the task's code.
                elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                        isinstance(target, ast.Name) and target.id.endswith("_HINTS") for target in node.targets):
                    codes = _codes_of(ast.Tuple(elts=[key for key in node.value.keys if key is not None]), {})
                for code in codes:
                    found.setdefault(code, set()).add(where)
    return found


def documented_codes() -> set[str]:
    """The codes a row of the doc's tables starts with: `code`, or `code`, `code` (what follows, as in "`invalid_option`
    naming `mode`", qualifies them); header rows (followed by the --- row) are no codes."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    codes = set()
    for line, following in zip(lines, [*lines[1:], ""]):
        if not line.startswith("| `") or following.startswith("| ---"):
            continue
        leading = re.match(r"\s*(`[a-z0-9_]+`(?:,\s*`[a-z0-9_]+`)*)", line.split("|")[1])
        codes.update(re.findall(r"`([a-z0-9_]+)`", leading.group(1)) if leading else ())
    return codes


def _return_docs(path: Path) -> dict:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id == "RETURN" for target in node.targets):
            return yaml.safe_load(node.value.value) or {}
    return {}


def _error_fields(returns: dict, prefix: str = "") -> dict[str, str]:
    """Each ``error`` field of RETURN docs (``results[].error`` too), with its description as one text."""
    found = {}
    for name, field in returns.items():
        if name == "error":
            description = field.get("description", "")
            found[prefix + name] = " ".join(description) if isinstance(description, list) else description
        if isinstance(field.get("contains"), dict):
            found.update(_error_fields(field["contains"], f"{prefix}{name}[]."))
    return found


MODULES = sorted(path for path in (PLUGINS / "modules").glob("*.py") if path.stem != "__init__")


def test_the_collector_finds_the_codes_it_should():
    codes = raised_codes()
    # Literal codes, codes through a name, through super().__init__, an endpoint's hinted error answers, a provider's
    # reply code and a result's error=.
    for code in ("smtp_auth", "spool_write", "token_endpoint_error", "invalid_option", "missing_library",
                 "invalid_grant", "redirect_uri_mismatch", "delivery_unknown", "token_endpoint_unreachable",
                 "insecure_path", "basic_auth_disabled", "write_failed"):
        assert code in codes, code
    assert "client_id" not in codes  # an OptionError's option, not a code
    assert "requests" not in codes  # MissingLibraryError's library


def test_the_doc_reader_reads_codes_only():
    codes = documented_codes()
    assert {"invalid_option", "spool_write", "spool_read", "unauthorized_client", "invalid_client"} <= codes
    assert not {"error", "mode"} & codes  # the header, and the option an invalid_option row qualifies


def test_every_raised_code_is_registered():
    unregistered = {code: sorted(files) for code, files in raised_codes().items() if code not in CODES}
    assert unregistered == {}, f"add these codes to CODES in plugins/module_utils/_errors.py: {unregistered}"


def test_every_registered_code_is_raised():
    assert sorted(set(CODES) - set(raised_codes())) == [], "codes nothing raises: remove them from CODES and the doc"


def test_every_registered_code_has_a_meaning():
    assert [code for code, meaning in CODES.items() if not CODE.match(code) or not meaning.strip()] == []


def test_troubleshooting_documents_exactly_the_registry():
    documented = documented_codes()
    assert sorted(set(CODES) - documented) == [], f"document these codes in {DOC.name}"
    assert sorted(documented - set(CODES)) == [], f"{DOC.name} documents codes that are not in CODES"


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.stem)
def test_module_return_docs_name_registered_codes_and_the_troubleshooting_page(module):
    fields = _error_fields(_return_docs(module))
    if module.stem in NO_ERROR_CODE:
        assert fields == {}, f"{module.stem} documents an error code; drop it from NO_ERROR_CODE"
        return
    assert "error" in fields, f"{module.stem}: RETURN documents no error"
    for name, description in fields.items():
        assert DOC_REFERENCE in description, f"{module.stem}: RETURN {name} does not name {DOC_REFERENCE}"
        named = set(re.findall(r"V\(([a-z0-9_]+)\)", description))
        assert sorted(named - set(CODES)) == [], f"{module.stem}: RETURN {name} names codes that are not in CODES"
