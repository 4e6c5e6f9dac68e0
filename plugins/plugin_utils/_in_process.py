# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An action that runs its module's entry function in the controller's worker process when the task runs there.

A task whose connection is the controller itself (``connection: local``, ``delegate_to: localhost``, ``hosts:
localhost``) needs no module process: the action validates the arguments with the module's own argument spec,
applies the task's ``environment:`` to ``os.environ`` for the call, runs the entry function (which lives in
module_utils, beside the module's argument spec) and formats its :class:`TaskResult` as that line's ``AnsibleModule``
does. What of ansible-core's internals that takes is in ``_core_adapter``. Anywhere else, and when
``smail_xoauth2_in_process`` is false, it runs the module as any action would (``_execute_module``).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import sys
import typing as t

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _core_adapter

display = Display()

#: The variable (task, play, host, extra vars) that sends the task to the module process when false.
IN_PROCESS_VARIABLE = "smail_xoauth2_in_process"
#: The controller's environment variable that does the same for every task that does not set the variable.
IN_PROCESS_ENVIRONMENT = "SMAIL_XOAUTH2_IN_PROCESS"
#: Interpreter settings that mean "whatever Python the target has": discovery, not a choice of the user.
DISCOVERY = ("auto", "auto_legacy", "auto_silent", "auto_legacy_silent")


@contextlib.contextmanager
def applied_environment(environment: t.Mapping[str, t.Any]) -> t.Iterator[None]:
    """``os.environ`` with ``environment`` for the duration of the block, restored afterwards."""
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update({name: str(value) for name, value in environment.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _same_python(interpreter: str) -> bool:
    found = shutil.which(interpreter.strip())
    return found is not None and os.path.realpath(found) == os.path.realpath(sys.executable)


def unsupported_options_message(module: str, args: t.Mapping[str, t.Any], spec: t.Mapping[str, t.Any]) -> str | None:
    """ansible-core's message for the task arguments that ``spec`` does not know, each followed by the closest option name
    (or alias) when one is near, "subjet (did you mean 'subject'?)"; None when every argument is known."""
    known = [alias for name, option in spec.items() for alias in (name, *option.get("aliases", ()))]
    unknown = sorted(str(name) for name in args if name not in known)
    if not unknown:
        return None
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        named.append(f"{name} (did you mean '{close[0]}'?)" if close else name)
    supported = ", ".join(f"{name} ({', '.join(sorted(option['aliases']))})" if option.get("aliases") else name
                          for name, option in sorted(spec.items()))
    return f"Unsupported parameters for ({module}) module: {', '.join(named)}. Supported parameters include: {supported}."


class InProcessModuleAction(ActionBase):
    """The action of a module whose work is ``run(params, *, check_mode) -> TaskResult``: in this worker process
    when the task runs on the controller, else the module process (see the module's notes)."""

    #: The module's fully qualified name.
    MODULE = ""
    _supports_check_mode = True
    _supports_async = True

    def argument_spec(self) -> dict[str, t.Any]:
        """The module's own argument spec."""
        raise NotImplementedError

    def run_module(self, params: dict[str, t.Any], *, check_mode: bool) -> TaskResult:
        """The module's entry function for validated ``params``."""
        raise NotImplementedError

    def module_process_reason(self, task_vars: t.Mapping[str, t.Any]) -> str | None:
        """Why this task runs the module as a module process, or None when it runs in this worker process."""
        forced = task_vars.get(IN_PROCESS_VARIABLE)
        if forced is None:
            forced = os.environ.get(IN_PROCESS_ENVIRONMENT)
            source = f"environment variable {IN_PROCESS_ENVIRONMENT}"
        else:
            forced = self._templar.template(forced)
            source = f"variable {IN_PROCESS_VARIABLE}"
        if forced is not None and forced != "" and not boolean(forced, strict=False):
            return f"{source} is false"
        if self._connection.transport != "local":
            return f"the connection is {self._connection.transport}, not the controller"
        if self._play_context.become:
            return "become"
        if self._task.async_val:
            return "async"
        host_vars = task_vars
        if self._task.delegate_to:
            host_vars = (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to) or {}
        interpreter = host_vars.get("ansible_python_interpreter")
        if interpreter is not None:
            interpreter = str(self._templar.template(interpreter))
            if interpreter not in DISCOVERY and not _same_python(interpreter):
                return f"ansible_python_interpreter {interpreter} is not the controller's Python"
        return None

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        unsupported = unsupported_options_message(self.MODULE, self._task.args, self.argument_spec())
        if unsupported:  # on either path, before anything runs: with a "did you mean" the module cannot give
            result.update(_core_adapter.format_result(TaskResult.failure(unsupported), params={}, no_log_values=(),
                                                      invocation=False))
            return result
        reason = self.module_process_reason(task_vars)
        if reason is None:
            display.vvv(f"{self.MODULE}: runs in the controller's worker process", host=self._play_context.remote_addr)
            result.update(self.run_in_process(invocation=_core_adapter.injects_invocation(task_vars)))
            return result
        display.vvv(f"{self.MODULE}: runs as a module process ({reason})", host=self._play_context.remote_addr)
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(module_name=self.MODULE, task_vars=task_vars,
                                                         wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def run_in_process(self, *, invocation: bool = True) -> dict[str, t.Any]:
        """Validate the task's arguments and run the module's entry function here, under the task's environment."""
        environment: dict[str, t.Any] = {}
        self._compute_environment_string(environment)
        with applied_environment(environment):
            # Inside: an option's environment fallback reads the task's environment, as in the module process.
            validation = _core_adapter.validate(self.argument_spec(), self._task.args, module=self.MODULE)
            if validation.error is not None:
                outcome = TaskResult.failure(validation.error)
            else:
                outcome = self.run_module(validation.params, check_mode=bool(self._task.check_mode))
        return _core_adapter.format_result(outcome, params=validation.params, no_log_values=validation.no_log_values,
                                           warnings=validation.warnings, deprecations=validation.deprecations,
                                           invocation=invocation)
