# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Task results that carry a token the next task needs, kept out of every output.

A module that masks a value (``no_log_values``) returns ``********`` to the registered variable too, and an action
cannot mask one key of its result. What ansible-core does offer is ``_ansible_no_log`` in an action's result: the
executor then gives every callback, at every verbosity, a censored copy, while ``register`` still receives the whole
result (ansible-core's own include_vars does this for vault-encrypted files). The other keys of such a result would
be hidden too, so they are shown at ``-v`` on a line of their own.
"""

from __future__ import annotations

import json
import typing as t

from ansible.utils.display import Display

display = Display()

#: Result keys that hold a bearer credential or a refresh token.
SECRET_RESULT_KEYS = ("access_token", "refresh_token")


def shown_part(result: t.Mapping[str, t.Any], keys: t.Iterable[str] = SECRET_RESULT_KEYS) -> dict[str, t.Any]:
    """What of ``result`` may be shown: everything but ``keys``, internal keys and the invocation."""
    hidden = set(keys) | {"invocation"}
    return {name: value for name, value in result.items() if name not in hidden and not name.startswith("_ansible_")}


def hide_from_output(result: dict[str, t.Any], *, label: str, keys: t.Iterable[str] = SECRET_RESULT_KEYS) -> dict[str, t.Any]:
    """``result``, marked no_log when one of ``keys`` holds a value; its other keys are then displayed at -v."""
    keys = tuple(keys)
    if any(result.get(key) for key in keys):
        result["_ansible_no_log"] = True
        display.v(f"{label}: {json.dumps(shown_part(result, keys), sort_keys=True, default=str)} (tokens hidden)")
    return result
