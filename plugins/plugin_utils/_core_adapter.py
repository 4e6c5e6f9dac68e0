# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every ansible-core internal the collection's actions rely on, in one file.

An action that runs a module's entry function in the controller's worker process must give the result a module
process would give, on each ansible-core line. That takes a few things ansible-core does not offer as an interface:
the attributes of an argument validation result (``_warnings``, ``_no_log_values``, ``_deprecations``), the
``INJECT_INVOCATION`` setting (2.21 on), the parsed mark of a module result (``_ansible_parsed`` before 2.21,
``ansible_parsed`` from 2.22 on), the ``_ansible_no_log`` result
key, and, on lines without ``ansible.module_utils.secrets`` (before 2.22), ``remove_values``. Nothing else of the
collection touches them: ``tests/unit/plugins/plugin_utils/test__core_adapter.py`` checks each on the line it runs
on, so that a change in ansible-core fails there first.
"""

from __future__ import annotations

import json
import typing as t

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.release import __version__ as ANSIBLE_VERSION
from ansible.utils.display import Display

from ansible_collections.smail.xoauth2.plugins.module_utils import _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult

display = Display()

#: This ansible-core's major and minor version.
CORE_VERSION = tuple(int(part) for part in ANSIBLE_VERSION.split(".")[:2])
#: The key with which this ansible-core marks a module's result as parsed: ``_ansible_parsed`` before 2.21, none in
#: 2.21, ``ansible_parsed`` (a field of its task result) from 2.22 on.
PARSED_MARK = "_ansible_parsed" if CORE_VERSION < (2, 21) else "ansible_parsed" if CORE_VERSION >= (2, 22) else None
#: Whether this ansible-core masks registered secrets in all output, so that results keep their real values (2.22 on).
CORE_MASKS_SECRETS = _secrets.CORE_MASKS_SECRETS
#: Result keys that hold a bearer credential or a refresh token.
SECRET_RESULT_KEYS = ("access_token", "refresh_token")


class Validation(t.NamedTuple):
    """A task's arguments validated against a module's argument spec, as AnsibleModule would see them."""

    params: dict[str, t.Any]
    #: The failure message when the arguments are not valid, else None.
    error: str | None
    warnings: list[str]
    no_log_values: set[str]
    deprecations: list[dict[str, t.Any]]


def validate(spec: t.Mapping[str, t.Any], args: t.Mapping[str, t.Any], *, module: str) -> Validation:
    """``args`` validated against ``spec`` with ansible-core's ``ArgumentSpecValidator`` (which, from 2.22 on, also
    registers the no_log values as secrets), with the messages AnsibleModule gives."""
    result = ArgumentSpecValidator(dict(spec)).validate(dict(args))
    # AnsibleModule's ModuleArgumentSpecValidator words its alias warnings so.
    warnings = [f"Both option {warning['option']} and its alias {warning['alias']} are set." for warning in result._warnings]
    error = None
    if result.errors.errors:  # a list: the container itself is always true
        error = result.errors.msg
        if isinstance(result.errors[0], UnsupportedError):
            error = f"Unsupported parameters for ({module}) module: {error}"
    return Validation(params=result.validated_parameters, error=error, warnings=warnings,
                      no_log_values=set(result._no_log_values), deprecations=list(result._deprecations))


def injects_invocation(task_vars: t.Mapping[str, t.Any]) -> bool:
    """Whether a module of this ansible-core puts ``invocation`` in its result: always before 2.21, from 2.21 as its
    ``INJECT_INVOCATION`` setting (default off) says."""
    try:
        return boolean(C.config.get_config_value("INJECT_INVOCATION", variables=task_vars), strict=False)
    except AnsibleError:  # a line without the setting
        return True


def mask_result(fields: dict[str, t.Any], secrets: t.Iterable[str]) -> dict[str, t.Any]:
    """``fields`` with ``secrets`` masked as this line masks a module's result.

    From 2.22 on the secrets are registered and the values stay real (ansible-core masks them in output); before, every
    occurrence is replaced by ``remove_values`` (booleans and None at the top level kept, as AnsibleModule keeps them).
    """
    secrets = {secret for secret in secrets if secret}
    if CORE_MASKS_SECRETS:
        _secrets.register(*secrets)
        return fields
    # Imported only where it is used: ansible-core 2.22 deprecates it.
    from ansible.module_utils.common.parameters import remove_values  # pylint: disable=import-outside-toplevel

    preserved = {name: value for name, value in fields.items() if value is None or isinstance(value, bool)}
    masked = remove_values(fields, secrets)
    masked.update(preserved)
    return masked


def format_result(outcome: TaskResult, *, params: t.Mapping[str, t.Any], no_log_values: t.Iterable[str],
                  warnings: t.Sequence[str] = (), deprecations: t.Sequence[dict[str, t.Any]] = (),
                  invocation: bool = True) -> dict[str, t.Any]:
    """``outcome`` as AnsibleModule's exit_json/fail_json would return it to the controller on this line.

    ``invocation`` holds the validated arguments; the values of no_log options and the outcome's secrets are masked as
    :func:`mask_result` says; the result is what JSON can carry, as a module's is after its trip over stdout.
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
    fields = json.loads(json.dumps(mask_result(fields, set(no_log_values) | outcome.secrets)))
    if PARSED_MARK:
        fields[PARSED_MARK] = True
    return fields


def shown_part(result: t.Mapping[str, t.Any], keys: t.Iterable[str] = SECRET_RESULT_KEYS) -> dict[str, t.Any]:
    """What of ``result`` may be shown: everything but ``keys``, internal keys and the invocation."""
    hidden = set(keys) | {"invocation"}
    return {name: value for name, value in result.items() if name not in hidden and not name.startswith("_ansible_")}


def keep_tokens_out_of_output(result: dict[str, t.Any], *, label: str,
                              keys: t.Iterable[str] = SECRET_RESULT_KEYS) -> dict[str, t.Any]:
    """``result``, whose ``keys`` hold tokens the next task needs, with the tokens out of every output.

    From 2.22 on the tokens are registered as secrets: ``register`` receives them, every output shows ``$REDACTED$``,
    and the rest of the result is shown as any other. Before, a module that masks a value returns ``********`` to the
    registered variable too, and an action cannot mask one key of its result; what ansible-core offers there is
    ``_ansible_no_log``, with which every callback gets a censored copy while ``register`` still receives the whole
    result (ansible-core's own include_vars does this for vault-encrypted files). The other keys are then shown at
    ``-v`` on a line of their own.
    """
    keys = tuple(keys)
    tokens = [result[key] for key in keys if result.get(key)]
    if not tokens:
        return result
    if CORE_MASKS_SECRETS:
        _secrets.register(*tokens)
        return result
    result["_ansible_no_log"] = True
    display.v(f"{label}: {json.dumps(shown_part(result, keys), sort_keys=True, default=str)} (tokens hidden)")
    return result
