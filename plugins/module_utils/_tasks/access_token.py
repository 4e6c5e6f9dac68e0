# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smail.xoauth2.access_token's work: its argument spec and its entry function.

The module (``plugins/modules/access_token.py``) and the action (``plugins/action/access_token.py``) are thin adapters
over :func:`run`; neither imports the other.
"""

from __future__ import annotations

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry
from ansible_collections.smail.xoauth2.plugins.module_utils._options import OAUTH2_ARGSPEC, TLS_ARGSPEC, merge_argspecs
from ansible_collections.smail.xoauth2.plugins.module_utils._send import credentials as _credentials
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult

#: The module's options, validated by AnsibleModule here and by ArgumentSpecValidator in the in-process action.
ARGUMENT_SPEC = merge_argspecs(OAUTH2_ARGSPEC, TLS_ARGSPEC)


def run(params: dict, *, check_mode: bool = False) -> TaskResult:
    """An access token for validated ``params``: the task's result (the token in it is not masked; the action hides
    the result from the output). The module process and the in-process action both call this."""
    secrets: list[str] = []
    try:
        credentials = _credentials.Credentials() if params["access_token"] else _credentials.read_credentials(params)
        # Secrets read from token_ini are masked like the options' (a new, rotated refresh token is not one of them).
        secrets = [value for value in (credentials.client_secret, credentials.refresh_token) if value]
        _refresh_expiry.warn_days(params)  # a bad value fails before the token endpoint is asked
        token = _credentials.obtain_token(params, credentials)
        rotation = _credentials.settle_rotation(params, credentials, token, check_only=check_mode)
        expiry = _credentials.refresh_token_expiry(params, token if token.source != "given" else None)
    except SmailError as exc:
        return TaskResult.from_error(exc, secrets=secrets)
    result = {
        "changed": bool(rotation and rotation.persisted_to),
        "expires_in": token.expires_in(),
        "expires_at": _credentials.expires_at_iso(token),
        "scopes": list(token.scopes),
        "token_source": token.source,
    }
    result.update(expiry.fields())
    warnings = list(expiry.warnings) + _credentials.scope_warnings(token)
    if token.source != "given":
        result["access_token"] = token.token
    if rotation is not None:
        result["refresh_token_rotated"] = True
        result["refresh_token_persisted"] = bool(rotation.persisted_to)
        if not rotation.persisted_to:
            result["refresh_token"] = rotation.new_refresh_token
        if rotation.warning:
            warnings.append(rotation.warning)
    return TaskResult(result, secrets=secrets, warnings=warnings)
