# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Each ansible-core internal the adapter relies on, checked on the line these tests run on: a change in ansible-core
fails here before it changes a result."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import pathlib

import pytest
from ansible import constants as C
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.smail.xoauth2.plugins.module_utils import _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _core_adapter

PLUGINS = pathlib.Path(_core_adapter.__file__).resolve().parents[1]

SPEC = {
    "to": {"type": "list", "elements": "str", "aliases": ["recipients"]},
    "password": {"type": "str", "no_log": True},
    "old": {"type": "str", "aliases": ["older"], "deprecated_aliases": [{"name": "older", "version": "9.0.0", "collection_name": "smail.xoauth2"}]},
}


def test_a_validation_result_carries_what_the_adapter_reads():
    validation = _core_adapter.validate(SPEC, {"to": ["a@example.com"], "recipients": ["b@example.com"],
                                               "password": "pw-secret-value", "older": "x"}, module="m")
    assert validation.error is None
    assert validation.warnings == ["Both option to and its alias recipients are set."]
    assert validation.no_log_values == {"pw-secret-value"}
    assert [deprecation["version"] for deprecation in validation.deprecations] == ["9.0.0"]
    assert "older" in validation.deprecations[0]["msg"]


def test_the_private_attributes_exist_on_this_line():
    result = ArgumentSpecValidator(SPEC).validate({"to": [], "recipients": []})
    assert isinstance(result._warnings, list) and result._warnings[0] == {"option": "to", "alias": "recipients"}
    assert isinstance(result._no_log_values, set) and isinstance(result._deprecations, list)


def test_an_unknown_option_is_named_as_ansible_module_names_it():
    validation = _core_adapter.validate(SPEC, {"zzz": 1}, module="smail.xoauth2.mail")
    assert validation.error.startswith("Unsupported parameters for (smail.xoauth2.mail) module: zzz.")


def test_inject_invocation_is_the_lines_setting():
    defined = "INJECT_INVOCATION" in C.config.get_configuration_definitions()
    assert defined is (_core_adapter.CORE_VERSION >= (2, 21))
    # Its default is off where it exists; before, every module result had an invocation.
    assert _core_adapter.injects_invocation({}) is (not defined)


def test_the_parsed_mark_is_what_this_lines_action_base_adds():
    source = inspect.getsource(ActionBase._parse_returned_data)
    assert ("_ansible_parsed=True" in source) is (_core_adapter.PARSED_MARK == "_ansible_parsed")
    if "utr.ansible_parsed = True" in source:
        # 2.21 and 2.22 both set the field; only a field with import/export metadata reaches the task's result (2.22).
        from ansible._internal import _task  # pylint: disable=import-outside-toplevel
        field = {item.name: item for item in dataclasses.fields(_task.UnifiedTaskResult)}["ansible_parsed"]
        assert bool(field.metadata) is (_core_adapter.PARSED_MARK == "ansible_parsed")


def test_the_secret_registry_is_there_from_2_22_on(secret_masker):
    assert _secrets.CORE_MASKS_SECRETS is (_core_adapter.CORE_VERSION >= (2, 22))
    assert (secret_masker is not None) is _secrets.CORE_MASKS_SECRETS


def test_a_result_is_masked_as_this_lines_module_result(secret_masker):
    outcome = TaskResult({"changed": True, "msg": "sent with ya29.token-value", "nested": {"note": "pw-secret-value"},
                          "spooled": False, "error": None}, secrets={"ya29.token-value"}, warnings=["kept"])
    result = _core_adapter.format_result(outcome, params={"password": "pw-secret-value", "to": ("a@example.com",)},
                                         no_log_values={"pw-secret-value"},
                                         warnings=["Both option to and its alias recipients are set."])
    assert result["warnings"] == ["Both option to and its alias recipients are set.", "kept"]
    assert result["changed"] is True and result["spooled"] is False and result["error"] is None
    assert result["invocation"]["module_args"]["to"] == ["a@example.com"]
    if _secrets.CORE_MASKS_SECRETS:
        # 2.22 on: the values stay real in the result; ansible-core masks them wherever they are shown.
        assert result["msg"] == "sent with ya29.token-value"
        assert result["invocation"]["module_args"]["password"] == "pw-secret-value"
        assert secret_masker(str(result)).count("$REDACTED$") == 3 and "secret-value" not in secret_masker(str(result))
    else:
        # A whole value is replaced by remove_values' placeholder, a part of one by asterisks, as in a module's result.
        assert result["msg"] == "sent with ********"
        assert result["nested"] == {"note": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}
        assert result["invocation"]["module_args"]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    marks = {key: value for key, value in result.items() if key in ("_ansible_parsed", "ansible_parsed")}
    assert marks == ({_core_adapter.PARSED_MARK: True} if _core_adapter.PARSED_MARK else {}) and "failed" not in result


def test_a_result_with_a_token_keeps_it_for_register_and_out_of_the_output(monkeypatch, secret_masker):
    shown = []
    monkeypatch.setattr(_core_adapter.display, "v", shown.append)
    result = {"changed": False, "access_token": "ya29.kept-secret", "expires_in": 3599, "invocation": {"module_args": {}}}

    assert _core_adapter.keep_tokens_out_of_output(result, label="host: x") is result

    assert result["access_token"] == "ya29.kept-secret"
    if _secrets.CORE_MASKS_SECRETS:
        # Shown as any result, the token as $REDACTED$.
        assert "_ansible_no_log" not in result and not shown
        assert secret_masker("token ya29.kept-secret") == "token $REDACTED$"
    else:
        assert result["_ansible_no_log"] is True
        assert shown == ['host: x: {"changed": false, "expires_in": 3599} (tokens hidden)']


def test_a_result_without_a_token_is_shown(monkeypatch):
    shown = []
    monkeypatch.setattr(_core_adapter.display, "v", shown.append)
    result = {"failed": True, "error": "invalid_grant", "refresh_token": None}
    assert "_ansible_no_log" not in _core_adapter.keep_tokens_out_of_output(result, label="x")
    assert not shown


@pytest.mark.skipif(not _secrets.CORE_MASKS_SECRETS, reason="ansible-core before 2.22 has no secret registry")
def test_secrets_learnt_on_the_way_are_registered(secret_masker):
    from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import transcript as _smtp_transcript

    transcript = _smtp_transcript.Transcript()
    transcript.add_secret("dXNlcj1zYXNsLXN0cmluZy12YWx1ZQ==")
    TaskResult({"changed": False}, secrets={"rt-learnt-secret-value"})
    assert secret_masker("a dXNlcj1zYXNsLXN0cmluZy12YWx1ZQ== b rt-learnt-secret-value") == "a $REDACTED$ b $REDACTED$"


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_action_or_controller_code_imports_a_module():
    for folder in ("action", "plugin_utils", "callback"):
        for path in (PLUGINS / folder).glob("*.py"):
            assert not [name for name in _imports(path) if ".plugins.modules" in name], path


# The internals the adapter alone may use.
INTERNALS = ("_no_log_values", "_warnings", "_deprecations", "INJECT_INVOCATION", "_ansible_parsed", "_ansible_no_log",
             "remove_values")


def test_only_the_adapter_uses_ansible_core_internals():
    users = {}
    for path in PLUGINS.rglob("*.py"):
        if path.name == "_core_adapter.py" or path.parent.name in ("doc_fragments",):
            continue
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        found = [name for name in INTERNALS if name in code and _used_as_code(code, name)]
        if found:
            users[str(path.relative_to(PLUGINS))] = found
    # The summary of the notify callback reads how ansible-core marks a no_log task's result, to say "output hidden".
    assert users == {"module_utils/_summary.py": ["_ansible_no_log"]}


def _used_as_code(code: str, name: str) -> bool:
    """Whether ``name`` appears outside docstrings and comments."""
    tree = ast.parse(code)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings and name in node.value:
            return True
        if isinstance(node, ast.Attribute) and node.attr == name:
            return True
        if isinstance(node, ast.Name) and node.id == name:
            return True
        if isinstance(node, ast.alias) and node.name == name:
            return True
    return False
