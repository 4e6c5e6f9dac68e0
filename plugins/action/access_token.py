# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smail.xoauth2.access_token: run the module of the same name (in this worker process when the task runs on the
controller), and keep the tokens it returns out of the output."""

from __future__ import annotations

import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult
from ansible_collections.smail.xoauth2.plugins.module_utils._tasks import access_token
from ansible_collections.smail.xoauth2.plugins.plugin_utils._core_adapter import keep_tokens_out_of_output
from ansible_collections.smail.xoauth2.plugins.plugin_utils._in_process import InProcessModuleAction


class ActionModule(InProcessModuleAction):
    """Run the access_token module (see plugin_utils._in_process), then keep the tokens of its result out of the output."""

    MODULE = "smail.xoauth2.access_token"
    # An async job's result would reach the output through async_status, unmasked.
    _supports_async = False

    def argument_spec(self) -> dict[str, t.Any]:
        return access_token.ARGUMENT_SPEC

    def run_module(self, params: dict[str, t.Any], *, check_mode: bool) -> TaskResult:
        return access_token.run(params, check_mode=check_mode)

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        host = (task_vars or {}).get("inventory_hostname", "")
        return keep_tokens_out_of_output(result, label=f"{host}: {self.MODULE}")
