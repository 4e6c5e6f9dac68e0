# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The in-process actions (mail, spool, access_token): where they run, and a result formatted like AnsibleModule's."""

from __future__ import annotations

import os
import sys
from unittest.mock import MagicMock

import pytest

from ansible_collections.smail.xoauth2.plugins.action.access_token import ActionModule as AccessTokenAction
from ansible_collections.smail.xoauth2.plugins.action.mail import ActionModule as MailAction
from ansible_collections.smail.xoauth2.plugins.action.spool import ActionModule as SpoolAction
from ansible_collections.smail.xoauth2.plugins.module_utils._tasks import mail
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _core_adapter, _in_process


def action(cls=MailAction, *, transport="local", become=False, async_val=0, delegate_to=None, args=None,
           environment=None, check_mode=False):
    plugin = cls.__new__(cls)
    plugin._connection = MagicMock(transport=transport)
    plugin._play_context = MagicMock(become=become)
    plugin._task = MagicMock(async_val=async_val, delegate_to=delegate_to, args=args or {}, check_mode=check_mode,
                             environment=environment)
    plugin._templar = MagicMock(template=lambda value: value)
    return plugin


@pytest.mark.parametrize("settings, task_vars, reason", [
    ({}, {}, None),
    ({}, {"ansible_python_interpreter": sys.executable}, None),
    ({}, {"ansible_python_interpreter": "auto_silent"}, None),
    ({}, {"ansible_python_interpreter": "/usr/bin/false"}, "ansible_python_interpreter /usr/bin/false is not the controller's Python"),
    ({"transport": "ssh"}, {}, "the connection is ssh, not the controller"),
    ({"become": True}, {}, "become"),
    ({"async_val": 30}, {}, "async"),
    ({}, {"smail_xoauth2_in_process": False}, "variable smail_xoauth2_in_process is false"),
    ({}, {"smail_xoauth2_in_process": "no"}, "variable smail_xoauth2_in_process is false"),
    ({"delegate_to": "localhost"}, {"ansible_python_interpreter": "/usr/bin/false",
                                    "ansible_delegated_vars": {"localhost": {"ansible_python_interpreter": sys.executable}}}, None),
])
def test_where_the_task_runs(settings, task_vars, reason):
    assert action(**settings).module_process_reason(task_vars) == reason


def test_the_environment_variable_forces_the_module_process(monkeypatch):
    monkeypatch.setenv("SMAIL_XOAUTH2_IN_PROCESS", "0")
    assert action().module_process_reason({}) == "environment variable SMAIL_XOAUTH2_IN_PROCESS is false"
    assert action().module_process_reason({"smail_xoauth2_in_process": True}) is None


def test_every_action_has_its_modules_spec():
    for cls in (MailAction, SpoolAction, AccessTokenAction):
        assert "client_secret" in cls.argument_spec(cls.__new__(cls))
    assert AccessTokenAction._supports_async is False


def test_the_environment_applies_for_the_call_only(monkeypatch):
    monkeypatch.setenv("SMAIL_TEST_KEPT", "before")
    monkeypatch.delenv("SMAIL_TEST_NEW", raising=False)
    with _in_process.applied_environment({"SMAIL_TEST_KEPT": "during", "SMAIL_TEST_NEW": 1}):
        assert os.environ["SMAIL_TEST_KEPT"] == "during" and os.environ["SMAIL_TEST_NEW"] == "1"
    assert os.environ["SMAIL_TEST_KEPT"] == "before" and "SMAIL_TEST_NEW" not in os.environ


def test_an_environment_fallback_reads_the_tasks_environment(monkeypatch):
    monkeypatch.delenv("SMAIL_XOAUTH2_CLIENT_SECRET", raising=False)
    plugin = action(args={"to": ["not an address"], "sender": "a@example.com", "subject": "s"})
    plugin._compute_environment_string = lambda raw: raw.update(SMAIL_XOAUTH2_CLIENT_SECRET="env-secret-value")
    result = plugin.run_in_process()
    assert result["failed"] is True and result["error"] == "invalid_option"
    # The value of a no_log option, as this line's module results carry it.
    assert result["invocation"]["module_args"]["client_secret"] == (
        "env-secret-value" if _core_adapter.CORE_MASKS_SECRETS else "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")
    assert "SMAIL_XOAUTH2_CLIENT_SECRET" not in os.environ


def test_an_unsupported_option_fails_like_the_module():
    plugin = action(args={"no_such_option": 1})
    plugin._compute_environment_string = lambda raw: None
    result = plugin.run_in_process()
    assert result["failed"] is True
    assert result["msg"].startswith("Unsupported parameters for (smail.xoauth2.mail) module: no_such_option.")


def test_the_module_spec_is_the_actions():
    assert MailAction.argument_spec(MailAction.__new__(MailAction)) is mail.ARGUMENT_SPEC


@pytest.mark.parametrize("task_vars", [{}, {"smail_xoauth2_in_process": False}], ids=["worker", "module process"])
def test_a_misspelt_option_is_named_with_the_option_meant_before_anything_runs(monkeypatch, task_vars):
    monkeypatch.setattr(_in_process.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    plugin = action(args={"subjet": "Deployed", "recipient": ["ops@example.com"], "zzz": 1, "client_secret": "cs-secret-value"})
    plugin._execute_module = MagicMock(side_effect=AssertionError("the module must not run"))
    plugin.run_module = MagicMock(side_effect=AssertionError("the module must not run"))
    result = plugin.run(task_vars=task_vars)
    assert result["failed"] is True
    assert result["msg"].startswith("Unsupported parameters for (smail.xoauth2.mail) module: "
                                    "recipient (did you mean 'recipients'?), subjet (did you mean 'subject'?), zzz. "
                                    "Supported parameters include: ")
    assert "to (recipients)" in result["msg"] and "cs-secret-value" not in str(result)


def test_known_options_and_aliases_pass_the_check():
    assert _in_process.unsupported_options_message("m", {"to": [], "recipients": [], "msg": "s"}, mail.ARGUMENT_SPEC) is None
