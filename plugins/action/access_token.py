# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smail.xoauth2.access_token: run the module of the same name, and keep the tokens it returns out of the output."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.smail.xoauth2.plugins.plugin_utils._secret_results import hide_from_output

MODULE = "smail.xoauth2.access_token"


class ActionModule(ActionBase):
    """Run the access_token module on the target, then hide a result holding a token from the output."""

    _supports_check_mode = True
    # An async job's result would reach the output through async_status, unmasked.
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        try:
            result.update(self._execute_module(module_name=MODULE, task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        host = (task_vars or {}).get("inventory_hostname", "")
        return hide_from_output(result, label=f"{host}: {MODULE}")
