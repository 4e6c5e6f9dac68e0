# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a module's entry function returns, and the one way a module process hands it to Ansible.

A module's work is a function ``run(params, *, check_mode) -> TaskResult``: the module process (``main()``) and an
action that runs it in the controller's worker (``plugin_utils._in_process``) are thin adapters over it, so both
report the same keys, the same masked secrets, the same failures and the same warnings.
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.smail.xoauth2.plugins.module_utils import _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import MissingLibraryError, SmailError

if t.TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule


class TaskResult:
    """The result fields of a task (``msg`` among them when it failed), the secrets to mask in them, and its warnings.

    ``secrets`` are values the work learnt on the way (a token, a secret read from a file) that must be masked like the
    values of no_log options (registered with ansible-core's masking where the line has one, 2.22 on, else replaced in
    the result); ``warnings`` never hold a secret.
    """

    def __init__(self, fields: dict[str, t.Any], *, failed: bool = False, secrets: t.Iterable[str] = (),
                 warnings: t.Iterable[str] = ()) -> None:
        self.fields = fields
        self.failed = failed
        self.secrets = {secret for secret in secrets if secret}
        _secrets.register(*self.secrets)
        self.warnings = list(warnings)

    def __repr__(self) -> str:
        return f"TaskResult(failed={self.failed!r}, keys={sorted(self.fields)!r})"

    @classmethod
    def failure(cls, msg: str, *, secrets: t.Iterable[str] = (), warnings: t.Iterable[str] = (),
                **fields: t.Any) -> TaskResult:
        """A failed task: ``msg`` and the other fields, as ``fail_json`` would take them."""
        return cls({**fields, "msg": msg}, failed=True, secrets=secrets, warnings=warnings)

    @classmethod
    def from_error(cls, exc: SmailError, *, secrets: t.Iterable[str] = (), warnings: t.Iterable[str] = (),
                   **fields: t.Any) -> TaskResult:
        """The failed task of ``exc``, the one mapping from an error to a result for every module, action and callback.

        The result holds ``exc``'s details, ``error`` (its code) and ``msg`` (its message and hint), then ``fields``
        (a transcript, say). A missing library is told as ansible-core tells it (``missing_required_lib``: the host
        and the Python interpreter that lack it).
        """
        if isinstance(exc, MissingLibraryError):
            return cls.failure(missing_required_lib(exc.library), secrets=secrets, warnings=warnings, error=exc.code,
                               **fields)
        return cls.failure(exc.full_msg, secrets=secrets, warnings=warnings, **{**exc.details, "error": exc.code, **fields})


def exit_module(module: AnsibleModule, outcome: TaskResult) -> t.NoReturn:
    """End the module process with ``outcome``: its secrets masked, its warnings warned, exit_json or fail_json.

    From ansible-core 2.22 on, the secrets registered in this process go back with the result and are masked in output;
    before, AnsibleModule replaces its ``no_log_values`` in the result.
    """
    if not _secrets.CORE_MASKS_SECRETS:
        module.no_log_values.update(outcome.secrets)
    for warning in outcome.warnings:
        module.warn(warning)
    if outcome.failed:
        fields = dict(outcome.fields)
        module.fail_json(msg=fields.pop("msg"), **fields)
    module.exit_json(**outcome.fields)
    raise AssertionError("exit_json returned")  # it exits the process; this tells type checkers so
