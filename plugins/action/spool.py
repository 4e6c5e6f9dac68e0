# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smail.xoauth2.spool: in the controller's worker process when the task runs on the controller, keeping one SMTP
session across the items of a loop; else the module process."""

from __future__ import annotations

import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult
from ansible_collections.smail.xoauth2.plugins.module_utils._tasks import spool
from ansible_collections.smail.xoauth2.plugins.plugin_utils._in_process import InProcessModuleAction
from ansible_collections.smail.xoauth2.plugins.plugin_utils._smtp_sessions import worker_sessions


class ActionModule(InProcessModuleAction):
    """List or deliver a spool from this worker process (see plugin_utils._in_process), or run the spool module."""

    MODULE = "smail.xoauth2.spool"

    def argument_spec(self) -> dict[str, t.Any]:
        return spool.ARGUMENT_SPEC

    def run_module(self, params: dict[str, t.Any], *, check_mode: bool) -> TaskResult:
        return spool.run(params, check_mode=check_mode, sessions=worker_sessions())
