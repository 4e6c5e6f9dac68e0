# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An action that runs its module's entry function in the controller's worker process when the task runs there.

A task whose connection is the controller itself (``connection: local``, ``delegate_to: localhost``, ``hosts:
localhost``) needs no module process: the action validates the arguments with the module's own argument spec
(``ArgumentSpecValidator``), applies the task's ``environment:`` to ``os.environ`` for the call, runs the module's
``run()`` and formats its :class:`TaskResult` as ``AnsibleModule`` does (``invocation``, warnings, deprecations, every
no_log value and every secret of the result masked by ``remove_values``). Anywhere else, and when
``smail_xoauth2_in_process`` is false, it runs the module as any action would (``_execute_module``).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import shutil
import sys
import typing as t

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.release import __version__ as ANSIBLE_VERSION
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult

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


#: Whether this ansible-core marks a module's result as parsed (``_ansible_parsed``); 2.21 no longer does.
_MARKS_PARSED = tuple(int(part) for part in ANSIBLE_VERSION.split(".")[:2]) < (2, 21)


def injects_invocation(task_vars: t.Mapping[str, t.Any]) -> bool:
    """Whether a module of this ansible-core puts ``invocation`` in its result: always before 2.21, from 2.21 as its
    ``INJECT_INVOCATION`` setting (default off) says."""
    try:
        return boolean(C.config.get_config_value("INJECT_INVOCATION", variables=task_vars), strict=False)
    except AnsibleError:  # a line without the setting
        return True


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


def format_result(outcome: TaskResult, *, params: t.Mapping[str, t.Any], no_log_values: t.Iterable[str],
                  warnings: t.Sequence[str] = (), deprecations: t.Sequence[dict[str, t.Any]] = (),
                  invocation: bool = True) -> dict[str, t.Any]:
    """``outcome`` as AnsibleModule's exit_json/fail_json would return it to the controller.

    ``invocation`` holds the validated arguments; the values of no_log options and the outcome's secrets are masked
    everywhere (booleans and None at the top level kept, as AnsibleModule keeps them); the result is what JSON can
    carry, as a module's is after its trip over stdout.
    """
    fields = dict(outcome.fields)
    if outcome.failed:
        fields["failed"] = True
    if invocation:
        fields.setdefault("invocation", {"module_args": dict(params)})
    else:
        fields.pop("invocation", None)
    all_warnings = [*warnings, *outcome.warnings]
    if all_warnings:
        fields["warnings"] = all_warnings
    if deprecations:
        fields["deprecations"] = list(deprecations)
    preserved = {name: value for name, value in fields.items() if value is None or isinstance(value, bool)}
    fields = remove_values(fields, set(no_log_values) | outcome.secrets)
    fields.update(preserved)
    fields = json.loads(json.dumps(fields))
    if _MARKS_PARSED:
        fields["_ansible_parsed"] = True
    return fields


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
            result.update(format_result(TaskResult.failure(unsupported), params={}, no_log_values=(), invocation=False))
            return result
        reason = self.module_process_reason(task_vars)
        if reason is None:
            display.vvv(f"{self.MODULE}: runs in the controller's worker process", host=self._play_context.remote_addr)
            result.update(self.run_in_process(invocation=injects_invocation(task_vars)))
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
            validation = ArgumentSpecValidator(self.argument_spec()).validate(dict(self._task.args))
            params = validation.validated_parameters
            warnings = [f"Both option {w['option']} and its alias {w['alias']} are set." for w in validation._warnings]
            if validation.errors.errors:  # a list: the container itself is always true
                msg = validation.errors.msg
                if isinstance(validation.errors[0], UnsupportedError):
                    msg = f"Unsupported parameters for ({self.MODULE}) module: {msg}"
                outcome = TaskResult.failure(msg)
            else:
                outcome = self.run_module(params, check_mode=bool(self._task.check_mode))
        return format_result(outcome, params=params, no_log_values=validation._no_log_values, warnings=warnings,
                             deprecations=validation._deprecations, invocation=invocation)
